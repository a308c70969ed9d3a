"""Turning the server's JSON into the dataclasses of :mod:`rota.models`.

Each model class is read once (its type hints) into a list of per-field converters, so decoding
a page of tasks costs a dictionary lookup and a call per field. Keys the model does not know are
ignored: a newer server may add fields, and the OpenAPI coverage test says which.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Tuple, Type, TypeVar, Union

T = TypeVar("T")

Converter = Callable[[Any], Any]

_plans: Dict[type, List[Tuple[str, Converter]]] = {}


def parse_time(text: str) -> datetime:
    """An RFC 3339 time as the server writes it (``2026-11-24T10:00:00.000Z``)."""
    try:
        return datetime.fromisoformat(text)  # Python 3.11 reads the "Z" itself
    except ValueError:
        if text.endswith("Z"):
            return datetime.fromisoformat(text[:-1] + "+00:00")
        raise


def format_time(value: datetime) -> str:
    """A time as the server reads it; a naive time is taken to be UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


def _identity(value: Any) -> Any:
    return value


def _converter(hint: Any) -> Converter:
    origin = typing.get_origin(hint)
    if origin is Union:
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(inner) == 1:
            conv = _converter(inner[0])
            if conv is _identity:
                return _identity
            return lambda v: None if v is None else conv(v)
        return _identity
    if origin in (list, List):
        (item,) = typing.get_args(hint)
        conv = _converter(item)
        if conv is _identity:
            return lambda v: list(v)
        return lambda v: [conv(x) for x in v]
    if hint is datetime:
        return parse_time
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return lambda v: decode(hint, v)
    return _identity


def _plan(cls: type) -> List[Tuple[str, Converter]]:
    plan = _plans.get(cls)
    if plan is None:
        module = sys.modules[cls.__module__]
        hints = typing.get_type_hints(cls, vars(module))
        plan = [(f.name, _converter(hints[f.name])) for f in dataclasses.fields(cls) if f.init]
        _plans[cls] = plan
    return plan


def decode(cls: Type[T], data: Any) -> T:
    """``data`` (a JSON object) as an instance of the dataclass ``cls``."""
    if not isinstance(data, dict):
        from .errors import DecodeError

        raise DecodeError(f"expected a JSON object for {cls.__name__}, got {type(data).__name__}")
    kwargs = {}
    for name, conv in _plan(cls):
        if name in data:
            value = data[name]
            kwargs[name] = None if value is None else conv(value)
    try:
        return cls(**kwargs)
    except TypeError as e:
        from .errors import DecodeError

        raise DecodeError(f"{cls.__name__}: {e}") from None


def decode_list(cls: Type[T], items: Any) -> List[T]:
    return [decode(cls, x) for x in items]


def wire_fields(cls: type) -> List[str]:
    """The JSON names a model reads (its dataclass fields)."""
    return [f.name for f in dataclasses.fields(cls) if f.init]
