"""``/healthz`` and ``/readyz``, without credentials: ready while the database answers at the
schema this opscm needs; 503 when it does not answer, or is behind."""

import sqlite3

import httpx
from starlette.testclient import TestClient

from opscm.app.composition import Application, Settings
from opscm.store.revisions import HEAD_REVISION
from tests.support.postgres import ADMIN_URL, fresh_database, psycopg
from tests.support.server import start_server


def test_sqlite_behind_its_schema_is_not_ready(tmp_path, caplog):
    app = Application(Settings(data_dir=tmp_path))
    try:
        http = TestClient(app.asgi)
        assert (http.get("/healthz").status_code, http.get("/healthz").text) == (200, "ok\n")
        assert (http.get("/readyz").status_code, http.get("/readyz").text) == (200, "ready\n")

        with sqlite3.connect(tmp_path / "opscm.db") as db:  # as an older opscm would have left it
            db.execute("UPDATE alembic_version SET version_num = '0002'")
        answer = http.get("/readyz")
        assert answer.status_code == 503
        assert answer.text == f"not ready: the database schema is at revision 0002; this opscm needs {HEAD_REVISION}\n"
        assert http.get("/healthz").status_code == 200, "the process is still up"
        assert "not ready: the database schema is at revision 0002" in caplog.text

        with sqlite3.connect(tmp_path / "opscm.db") as db:
            db.execute("UPDATE alembic_version SET version_num = ?", (HEAD_REVISION,))
        assert http.get("/readyz").status_code == 200
    finally:
        app.close()


def test_a_dropped_postgresql_database_is_not_ready(tmp_path):
    with fresh_database() as url:
        server = start_server(tmp_path, "--database-url", url, "--ca-key-bits", "2048")
        try:
            assert httpx.get(f"{server.url}/readyz").status_code == 200
            name = url.rsplit("/", 1)[1]
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
                answer = httpx.get(f"{server.url}/readyz", timeout=30)
                assert (answer.status_code, answer.text) == (503, "not ready: the database does not answer\n")
                assert httpx.get(f"{server.url}/healthz").status_code == 200
                scrape = httpx.get(f"{server.url}/metrics", timeout=30)  # the counters, without the store's gauges
                assert scrape.status_code == 200 and "opscm_worker_processes 1.0" in scrape.text and "opscm_servers" not in scrape.text

                admin.execute(f"CREATE DATABASE {name}")  # answers again, but empty: no schema
                answer = httpx.get(f"{server.url}/readyz", timeout=30)
                assert (answer.status_code, answer.text) == (
                    503, f"not ready: the database schema is at revision none; this opscm needs {HEAD_REVISION}\n"
                )
        finally:
            server.stop()
