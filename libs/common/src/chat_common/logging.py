"""Structured JSON logs: one object per line on stderr, ids bound through ``extra``."""

from __future__ import annotations

import logging
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter


class _Formatter(JsonFormatter):
    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record.pop("color_message", None)  # uvicorn's ANSI-coloured duplicate
        log_record["level"] = record.levelname.lower()
        log_record["logger"] = record.name
        log_record.setdefault("service", self.service)

    service = "chat"


def setup_logging(service: str, level: str = "INFO") -> None:
    fmt = _Formatter("%(asctime)s %(message)s", rename_fields={"asctime": "ts"})
    fmt.service = service
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(fmt)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # One line per request is logged by our own middleware instead.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
