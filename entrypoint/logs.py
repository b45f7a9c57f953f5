"""Logging for operators: one line per event on stderr, as text or JSON.

Text: ``marketplace-entrypoint: <level>: <message>``. JSON: one object per line with ``time``,
``level``, ``message`` and the event's fields, for log pipelines (CloudWatch, Fluent Bit).

Nothing here ever receives credentials: callers log product codes, regions, error codes and
timings, never keys, tokens or signed headers.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from .config import LogFormat

__all__ = ["LOGGER_NAME", "configure_logging", "event", "logger"]

LOGGER_NAME = "marketplace_entrypoint"
PROGRAM = "marketplace-entrypoint"
logger = logging.getLogger(LOGGER_NAME)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{PROGRAM}: {record.levelname.lower()}: {record.getMessage()}"


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": PROGRAM,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                entry.setdefault(str(key), value)
        return json.dumps(entry, default=str, ensure_ascii=False, separators=(",", ":"))


def configure_logging(
    log_format: LogFormat = LogFormat.TEXT,
    *,
    stream: TextIO | None = None,
    level: int = logging.INFO,
) -> None:
    """Send the entrypoint's log to ``stream`` (default stderr) in ``log_format``.

    Idempotent: reconfiguring replaces the previous handler. The library never configures logging
    on import; only the command line does.
    """
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(_JsonFormatter() if log_format is LogFormat.JSON else _TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def event(level: int, message: str, **fields: object) -> None:
    """Log ``message`` with structured ``fields`` (shown as JSON members in JSON format)."""
    logger.log(level, message, extra={"fields": fields})
