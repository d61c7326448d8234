"""Errors and warnings as runc writes them.

Without ``--log``: the record goes to stderr in the ``--log-format``.
With ``--log FILE``: the record goes to FILE and the bare message to stderr
(containerd shows the file's last error; podman parses the file as one JSON
object, so an error run writes exactly one record there).
"""

from __future__ import annotations

import os
import sys
import time

from ocirt import _fastjson
from ocirt.errors import OcirtError

# Commands whose errors runc prefixes with "runc <command> failed: ".
PREFIXED = {"create", "run"}


def _record(ctx, level: str, message: str) -> str:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if ctx.log_format == "json":
        return _fastjson.dumps({"level": level, "msg": message, "time": now}, compact=True) + "\n"
    return f"time={_fastjson.dumps(now)} level={level} msg={_fastjson.dumps(message)}\n"


def log(ctx, level: str, message: str) -> None:
    record = _record(ctx, level, message)
    if ctx.log:
        try:
            fd = os.open(ctx.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, record.encode())
            finally:
                os.close(fd)
        except OSError:
            sys.stderr.write(record)
    if not ctx.log or level == "error":
        sys.stderr.write(message + "\n" if ctx.log else record)
        sys.stderr.flush()


def error(ctx, message: str) -> None:
    log(ctx, "error", message)


def warn(ctx, message: str) -> None:
    log(ctx, "warning", message)


def describe(exc: BaseException) -> str:
    if isinstance(exc, OcirtError):
        return str(exc)
    if isinstance(exc, OSError):
        text = exc.strerror or str(exc)
        if exc.filename:
            text = f"{exc.filename}: {text}"
        return text
    return f"{type(exc).__name__}: {exc}"


def fail(ctx, exc: BaseException) -> int:
    message = describe(exc)
    if ctx.command in PREFIXED:
        message = f"ocirt {ctx.command} failed: {message}"
    error(ctx, message)
    return getattr(exc, "exit_code", 1)
