"""The host's imports — log, clock, kv — with in-memory stand-ins outside a component, for unit tests."""

from __future__ import annotations

import time as _time
from typing import Dict, List, Optional, Tuple

from .types import Timestamp

try:  # Inside a component built by componentize-py.
    from wit_world.imports import clock as _clock
    from wit_world.imports import kv as _kv
    from wit_world.imports import log as _log

    IN_COMPONENT = True
except ImportError:  # Plain CPython: unit tests.
    IN_COMPONENT = False

#: Lines logged outside a component, as (level, message): what a unit test can assert on.
LOGGED: List[Tuple[str, str]] = []
_STORE: Dict[str, bytes] = {}


def _write(level: str, message: str) -> None:
    if IN_COMPONENT:
        _log.write(getattr(_log.Level, level.upper()), message)
    else:
        LOGGED.append((level, message))


def debug(message: str) -> None:
    """Writes a debug line to idfed's log (tagged with plugin, binding and connector; rate-limited)."""
    _write("debug", message)


def info(message: str) -> None:
    """Writes an info line to idfed's log."""
    _write("info", message)


def warn(message: str) -> None:
    """Writes a warning to idfed's log."""
    _write("warn", message)


def error(message: str) -> None:
    """Writes an error line to idfed's log."""
    _write("error", message)


def now() -> Timestamp:
    """The host's wall clock (UTC). Prefer `request.time` to decide: it is when the request arrived."""
    if IN_COMPONENT:
        ts = _clock.now()
        return Timestamp(ts.seconds, ts.nanoseconds)
    ns = _time.time_ns()
    return Timestamp(ns // 1_000_000_000, ns % 1_000_000_000)


class KvError(Exception):
    """A key-value store operation failed (invalid key, value too large, quota, not a counter, unavailable)."""


def _kv_call(f, *args):
    from componentize_py_types import Err

    try:
        return f(*args)
    except Err as e:
        raise KvError(type(e.value).__name__.split("_", 1)[-1]) from None


def kv_get(key: str) -> Optional[bytes]:
    """A key of the binding's private store, or None (absent or expired)."""
    if IN_COMPONENT:
        return _kv_call(_kv.get, key)
    return _STORE.get(key)


def kv_set(key: str, value: bytes, ttl_seconds: Optional[int] = None) -> None:
    """Writes a key (TTLs are ignored by the stand-in)."""
    if IN_COMPONENT:
        _kv_call(_kv.set, key, value, ttl_seconds)
    else:
        _STORE[key] = bytes(value)


def kv_delete(key: str) -> None:
    """Removes a key; an absent one is fine."""
    if IN_COMPONENT:
        _kv_call(_kv.delete, key)
    else:
        _STORE.pop(key, None)


def kv_increment(key: str, delta: int = 1, ttl_seconds: Optional[int] = None) -> int:
    """Adds `delta` to the counter at `key` atomically and returns the new value."""
    if IN_COMPONENT:
        return _kv_call(_kv.increment, key, delta, ttl_seconds)
    value = int(_STORE.get(key, b"0")) + delta
    _STORE[key] = str(value).encode()
    return value
