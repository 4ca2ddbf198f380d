from datetime import datetime, timezone

from opscm.domain.associations import Association, AssociationAction, AssociationStatus
from opscm.service.recent_answers import RecentAnswers


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _outcome(token: str, server_id: str = "s1") -> Association:
    return Association(
        token_hash=token, server_id=server_id, node_name=f"node-{token}", action=AssociationAction.ASSOCIATE,
        status=AssociationStatus.SUCCESS, created_at=datetime(2026, 12, 1, tzinfo=timezone.utc), engine_attributes=[],
    )


def test_an_outcome_is_given_once():
    answers = RecentAnswers(monotonic=Clock())
    answers.put(_outcome("t1"))
    assert answers.take("t1").node_name == "node-t1"
    assert answers.take("t1") is None  # a later poll reads the store
    assert answers.take("never-made") is None


def test_an_outcome_is_given_only_within_its_ttl():
    clock = Clock()
    answers = RecentAnswers(ttl=2.0, monotonic=clock)
    answers.put(_outcome("fresh"))
    answers.put(_outcome("stale"))
    clock.now += 1.9
    assert answers.take("fresh") is not None
    clock.now += 0.2
    assert answers.take("stale") is None


def test_the_oldest_and_the_expired_go_first():
    clock = Clock()
    answers = RecentAnswers(ttl=2.0, capacity=3, monotonic=clock)
    for token in ("a", "b", "c", "d"):
        answers.put(_outcome(token))
    assert answers.take("a") is None  # over the capacity
    assert [answers.take(token) is not None for token in ("b", "c", "d")] == [True, True, True]
    answers.put(_outcome("old"))
    clock.now += 3
    answers.put(_outcome("new"))
    assert len(answers._kept) == 1  # the expired one went with the next put


def test_a_deleted_servers_outcomes_are_forgotten():
    answers = RecentAnswers(monotonic=Clock())
    answers.put(_outcome("gone", server_id="deleted"))
    answers.put(_outcome("kept", server_id="other"))
    answers.forget_server("deleted")
    assert answers.take("gone") is None
    assert answers.take("kept") is not None
