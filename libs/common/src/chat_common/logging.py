"""Structured JSON logs: one object per line on stderr; ids come from ``extra`` and from
what the task bound (``chat_proto.logctx.bind``: the RPC's request id, user, …)."""

from __future__ import annotations

import logging
import sys
from typing import Any

from chat_proto.logctx import bound
from pythonjsonlogger.json import JsonFormatter


class _Formatter(JsonFormatter):
    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        for key, value in bound().items():  # ids bound to the task (chat_proto.logctx)
            log_record.setdefault(key, value)
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
