"""What ``opscm serve`` prints, and in which form.

``text`` (the default): log records as ``<time> LEVEL logger: message`` on stderr, and opscm's
own announcements (the ready line, where the credentials are, why a start failed) as
``opscm: ...`` lines, on stdout (errors and warnings on stderr). ``json``: every one of those
lines is one JSON object instead (``time``, ``level``, ``logger``, ``message``, ``pid``, and
the request's fields on request lines), for log shippers.

At the default level only opscm's lines are printed: Alembic's notes on each start and uvicorn's
startup chatter are kept for ``--log-level debug``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries whose INFO lines say nothing an operator needs at each start.
CHATTY_LIBRARIES = ("alembic", "uvicorn")
# The logger of opscm's announcements; always printed, whatever the level.
CONSOLE = "opscm.console"
# What a request's log line carries as fields of its own (see app/pipeline.py).
REQUEST_FIELDS = ("request_id", "operation", "outcome", "status", "duration_ms")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in a message or traceback are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for field in REQUEST_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str, log_format: str) -> None:
    """Set up this process's logging (its workers inherit it); replaces any earlier set-up."""
    json_lines = log_format == "json"
    root = logging.getLogger()
    root.setLevel(level.upper())
    _replace_handlers(root, _handler(sys.stderr, JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT)))
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING)

    console = logging.getLogger(CONSOLE)
    console.setLevel(logging.INFO)
    console.propagate = False
    formatter = JsonFormatter() if json_lines else logging.Formatter("opscm: %(message)s")
    news = _handler(sys.stdout, formatter)
    news.addFilter(lambda record: record.levelno < logging.WARNING)
    trouble = _handler(sys.stderr, formatter)
    trouble.setLevel(logging.WARNING)
    _replace_handlers(console, news, trouble)


def console() -> logging.Logger:
    """opscm's announcements: ``console().info("serving on ...")``, ``console().error(...)``."""
    return logging.getLogger(CONSOLE)


def _handler(stream, formatter: logging.Formatter) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    return handler


def _replace_handlers(logger: logging.Logger, *handlers: logging.Handler) -> None:
    for old in list(logger.handlers):
        logger.removeHandler(old)
    for handler in handlers:
        logger.addHandler(handler)
