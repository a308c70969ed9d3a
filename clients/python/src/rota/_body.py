"""Request bodies as the client methods build them: :data:`UNSET` for a patch field left as it
is, and the helpers that drop unset fields. Shared by the async client, its mixins and their
generated sync twins, so the sync and async clients leave out the same ``UNSET``."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Dict

from ._decode import format_time


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""A patch field left as it is (``None`` sends ``null``, which lifts a limit)."""


def patch(**fields: Any) -> Dict[str, Any]:
    """The fields that are not :data:`UNSET`, dataclasses as their set fields, times as RFC 3339."""
    out: Dict[str, Any] = {}
    for name, value in fields.items():
        if value is UNSET:
            continue
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            # Rate, Backoff, ClientLimits: their fields, leaving out the unset ones.
            value = {k: v for k, v in dataclasses.asdict(value).items() if v is not None}
        elif isinstance(value, datetime):
            value = format_time(value)
        out[name] = value
    return out


def some(**fields: Any) -> Dict[str, Any]:
    """The fields that are not ``None``."""
    return patch(**{k: v for k, v in fields.items() if v is not None})
