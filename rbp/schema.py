"""Typed dataclasses from plain mappings (YAML, notebook globals), with errors that name the key.

`build(cls, values, source, error)` checks every key against the dataclass's type hints (Literal,
unions, lists, nested dataclasses; an int is taken for a float) and raises `error` naming the file,
the dotted key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Literal


def build(cls, values, source: str, error: type[Exception]):
    return _build(cls, values, "", source, error)


def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            type(None): "null"}.get(tp, getattr(tp, "__name__", str(tp)))


def _fits(value, tp) -> bool:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        return any(_fits(value, a) for a in typing.get_args(tp))
    if origin is list:
        return isinstance(value, list) and all(_fits(v, typing.get_args(tp)[0]) for v in value)
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _build(cls, values, where: str, source: str, error: type[Exception]):
    if not isinstance(values, dict):
        raise error(f"{source}: {where[:-1] or 'the file'} must be a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        scope = f"in {where[:-1]}" if where else "at the top"
        raise error(
            f"{source}: unknown key {where}{unknown[0]}; allowed {scope}: " + ", ".join(hints)
        )
    kwargs = {}
    for key, value in values.items():
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value or {}, f"{where}{key}.", source, error)
            continue
        if not _fits(value, tp):
            raise error(f"{source}: {where}{key} must be {_describe(tp)}, got {value!r}")
        if tp is float or (typing.get_origin(tp) in (types.UnionType, typing.Union)
                           and float in typing.get_args(tp) and isinstance(value, int)):
            value = float(value)
        kwargs[key] = value
    return cls(**kwargs)
