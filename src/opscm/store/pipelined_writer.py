"""A PostgreSQL writer connection in pipeline mode: a lean transaction in two round trips.

psycopg sends a statement and waits for its answer, and its transactions add a BEGIN and a
COMMIT round trip of their own: a Chef or Puppet association (the name's claim, which checks the
server's row in the same statement; the key or certificate; the token) took five. In pipeline
mode a statement whose answer is not read yet waits in the connection's buffer and leaves with
the next one that must be answered: BEGIN goes with the claim, and the last inserts go with the
COMMIT. Every round trip is a wake-up of PostgreSQL and of the waiting thread (or of the event
loop, which then waits), on the same cores.

The connection is in autocommit mode and stays in pipeline mode as long as it lives: BEGIN and
COMMIT are statements of the pipeline (psycopg's own transactions would sync after BEGIN, and
leaving pipeline mode after each transaction would cost a round trip of its own).
"""

from __future__ import annotations


class PipelinedWriter:
    def __init__(self, driver):
        self.driver = driver
        driver.autocommit = True
        self._mode = driver.pipeline()
        self._pipeline = self._mode.__enter__()
        # Begun and not committed. libpq cannot tell: in pipeline mode its transaction status is
        # the one of the last sync, "idle" through a whole transaction.
        self._open = False

    def begin(self) -> None:
        self.driver.execute("BEGIN")  # sent with the transaction's first statement that is answered
        self._open = True

    def commit(self) -> None:
        self.driver.execute("COMMIT")
        self._pipeline.sync()  # a failure of any statement still unanswered is raised here
        self._open = False

    def run(self, statement: str) -> None:
        """A statement of the session's, outside any transaction (a setting)."""
        self.driver.execute(statement)
        self._pipeline.sync()

    def rollback(self) -> None:
        """End whatever the transaction left: nothing to send after a commit (no round trip)."""
        # psycopg is an extra (opscm[postgres]): imported where PostgreSQL is used, never on SQLite.
        import psycopg

        if self._open or self.driver.pgconn.pipeline_status == psycopg.pq.PipelineStatus.ABORTED:
            # psycopg syncs first: what is still queued reaches PostgreSQL, inside the
            # transaction, and the pipeline leaves an aborted state; then ROLLBACK.
            try:
                self.driver.rollback()
            except psycopg.Error:
                # That sync raised a failure still queued (its statement's, or "pipeline
                # aborted") before the ROLLBACK was sent; out of the aborted state, this one ends
                # the transaction (a broken connection raises again, and is closed).
                self.driver.rollback()
            self._open = False

    def close(self) -> None:
        try:
            self._mode.__exit__(None, None, None)
        except Exception:  # noqa: BLE001 - a broken connection fails to leave pipeline mode; it is closed anyway
            pass
        self.driver.close()
