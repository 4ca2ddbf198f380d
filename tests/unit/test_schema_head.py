"""opscm knows its newest schema revision without Alembic; it must be Alembic's head."""

from alembic.config import Config
from alembic.script import ScriptDirectory

from opscm.store.database import MIGRATIONS
from opscm.store.revisions import HEAD_REVISION


def test_the_known_head_is_alembics_head():
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION
