"""PostgreSQL connections give up on a peer that stopped answering (libpq waits forever by
default); a timeout the database URL sets itself wins."""

from opscm.store.database import POSTGRES_TIMEOUTS, postgres_connect_args


def test_every_timeout_by_default():
    assert postgres_connect_args("postgresql+psycopg://opscm@db.example.com/opscm") == POSTGRES_TIMEOUTS
    assert POSTGRES_TIMEOUTS["connect_timeout"] and POSTGRES_TIMEOUTS["tcp_user_timeout"] and POSTGRES_TIMEOUTS["keepalives"]


def test_the_urls_own_parameters_win():
    args = postgres_connect_args("postgresql+psycopg://opscm@db/opscm?connect_timeout=3&keepalives_idle=5&sslmode=require")
    assert "connect_timeout" not in args and "keepalives_idle" not in args
    assert args["tcp_user_timeout"] == POSTGRES_TIMEOUTS["tcp_user_timeout"]


def test_nothing_for_sqlite():
    assert postgres_connect_args("sqlite:////var/lib/opscm/opscm.db") == {}
