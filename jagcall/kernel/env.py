"""A strict environment reader: every setting comes from here.

``env("NAME")`` without a default raises ImproperlyConfigured naming the
variable, so a missing production value stops start-up with a message that
says what to set, instead of failing later with a confusing error.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from django.core.exceptions import ImproperlyConfigured

_NOTSET = object()
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _to_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")


def _to_list(name: str, raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def _to_int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None


def _to_float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number such as 5 or 2.5, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):  # nan and infinities are not durations
        raise ImproperlyConfigured(f"{name} must be a finite number, got {raw!r}")
    return value


CASTS: dict[type, Callable[[str, str], Any]] = {
    bool: _to_bool, list: _to_list, int: _to_int, float: _to_float, str: lambda _n, v: v,
}  # fmt: skip


def env(name: str, default: Any = _NOTSET, cast: type = str) -> Any:
    raw = os.environ.get(name)
    if raw is None or (raw == "" and cast is not bool):
        if default is _NOTSET:
            raise ImproperlyConfigured(f"Set the {name} environment variable (see README.md, Configuration).")
        return default
    return CASTS[cast](name, raw)


def is_set(name: str) -> bool:
    return bool(os.environ.get(name))
