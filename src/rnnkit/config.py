"""Typed dataclass configs: conversion to and from JSON dicts, and dotted-key overrides.

Each component owns a keyword-only dataclass next to its code (``TrainConfig`` in ``rnnkit.train``,
the language model's configs in ``rnnkit.tasks.lm``) and validates itself in ``__post_init__``. This
module only moves values in and out: unknown keys and wrong types are refused, never guessed at, and
nothing is ever ``exec``'d.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, TypeVar

from rnnkit.errors import UsageError

T = TypeVar("T")


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, kind: Any, key: str) -> Any:
    """``value`` as ``kind``; strings (from the command line) are parsed, other values type-checked."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except UsageError as exc:
                errors.append(str(exc))
        raise UsageError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is list:
        (item,) = typing.get_args(kind) or (Any,)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list | tuple):
            raise UsageError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, item, key) for v in value]
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise UsageError(f"{key}: expected an object, got {value!r}")
        return from_dict(kind, value, prefix=key + ".")
    if kind is Any:
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise UsageError(f"{key}: expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise UsageError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise UsageError(f"{key}: expected an integer, got {value!r}")
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise UsageError(f"{key}: expected a number, got {value!r}")
    if kind is str:
        if isinstance(value, str):
            return value
        raise UsageError(f"{key}: expected a string, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    """Build ``cls`` from a dict, refusing unknown keys and values of the wrong type."""
    hints = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    legacy = set(getattr(cls, "LEGACY_KEYS", ())) - names  # a config class's declared ClassVar
    data = {key: value for key, value in data.items() if key not in legacy}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UsageError(f"unknown config key {prefix}{unknown[0]} (known: {', '.join(sorted(names))})")
    values = {name: _coerce(value, hints[name], prefix + name) for name, value in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def apply(config: T, values: dict[str, Any]) -> T:
    """Return a new config with typed values at dotted keys (``{"train.lr": 3e-3}``), checked like
    :func:`from_dict`; ``None`` values are skipped (a flag that was not given)."""
    data = to_dict(config)
    for key, value in values.items():
        if value is None:
            continue
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise UsageError(f"unknown config key {key!r}")
            node = node[part]
        if leaf not in node:
            raise UsageError(f"unknown config key {key!r}")
        node[leaf] = value
    return from_dict(type(config), data)


def override(config: T, assignments: list[str]) -> T:
    """Apply ``key=value`` strings with dotted keys (``train.lr=3e-3``) and return a new config.

    Values are parsed as JSON when they parse (numbers, true/false, lists) and as plain strings otherwise.
    """
    data = to_dict(config)
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key:
            raise UsageError(f"--set: expected KEY=VALUE, got {assignment!r}")
        *parents, leaf = key.strip().split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise UsageError(f"--set: unknown config key {key!r}")
            node = node[part]
        if leaf not in node:
            raise UsageError(f"--set: unknown config key {key!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node[leaf] = value
    return from_dict(type(config), data)


def check_rnn_fields(config: Any, *, positive: tuple[str, ...]) -> None:
    """The checks every recurrent model config shares: a known cell, positive sizes, a dropout in [0, 1)."""
    from rnnkit.nn.cells import CELLS

    if config.cell not in CELLS:
        raise ValueError(f"cell: expected one of {sorted(CELLS)}, got {config.cell!r}")
    for name in positive:
        if getattr(config, name) < 1:
            raise ValueError(f"{name}: expected a positive integer, got {getattr(config, name)}")
    if not 0 <= config.dropout < 1:
        raise ValueError(f"dropout: expected a probability in [0, 1), got {config.dropout}")
