"""Typed dataclass configs: conversion to and from JSON dicts, and dotted-key overrides.

Each component owns a keyword-only dataclass next to its code (``TrainConfig`` in ``rnnkit.train``,
the language model's configs in ``rnnkit.tasks.lm``) and validates itself in ``__post_init__``. This
module only moves values in and out, through pydantic: unknown keys and values of the wrong type are
refused, never guessed at, nothing is ever ``exec``'d, and every refusal is one line that names the
field by its dotted key (``train.lr: expected a number, got 'fast'``), never pydantic's report.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from rnnkit.errors import UsageError

if TYPE_CHECKING:
    from pydantic import TypeAdapter

T = TypeVar("T")

_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "an object",
    "dataclass_type": "an object",
}
"""What a field wanted, by the type of pydantic's error (the words of the messages users see)."""


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    """Build ``cls`` from a dict (a saved ``config.json``'s), refusing unknown keys at every level and
    values of the wrong type; the keys a class declares in ``LEGACY_KEYS`` are read and dropped.
    ``prefix`` goes before the keys named in errors."""
    from pydantic import ValidationError

    where, kind = prefix.rstrip(".") or "config", typing.cast(type, cls)
    if not isinstance(data, dict):
        raise UsageError(f"{where}: expected an object, got {data!r}")
    try:
        text = json.dumps({"config": _without_legacy(kind, data)})
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{where}: not a JSON value ({exc})") from None
    try:
        return _adapter(kind).validate_json(text)["config"]
    except ValidationError as exc:
        raise UsageError(_describe(kind, exc.errors()[0], prefix)) from None
    except TypeError as exc:  # a __post_init__ that refuses with TypeError (pydantic passes it on)
        raise UsageError(" ".join(str(exc).splitlines())) from None


def apply(config: T, values: dict[str, Any]) -> T:
    """Return a new config with typed values at dotted keys (``{"train.lr": 3e-3}``), checked like
    :func:`from_dict`; ``None`` values are skipped (a flag that was not given)."""
    return _assign(config, [(key, value) for key, value in values.items() if value is not None], "")


def override(config: T, assignments: list[str]) -> T:
    """Apply ``key=value`` strings with dotted keys (``train.lr=3e-3``, the ``--set`` option) and return
    a new config, each value read for its field's type (see :func:`_parse`)."""
    values = []
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set: expected KEY=VALUE, got {assignment!r}")
        values.append((key, _parse(raw, _field(type(config), key, "--set: ")[2], key)))
    return _assign(config, values, "--set: ")


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


# -------------------------------------------------------------------------------------------------
# pydantic underneath


@functools.cache
def _adapter(cls: type) -> TypeAdapter[dict[str, Any]]:
    """Validates ``{"config": data}`` into a ``cls``.

    The pydantic config is set on the dict around the class because a ``TypeAdapter`` of a dataclass
    takes none, and a plain dataclass that carries none of its own is validated under its parent's:
    so every section, at any depth, refuses unknown keys (``extra="forbid"``) and takes only values of
    its field's own type (``strict``: no "3" or 2.0 or true for an integer, no 1 for a string; an
    integer for a float is fine). Strict validation of Python objects would want dataclass instances
    where the data has dicts; strict validation of JSON takes objects, so the data goes in as JSON text.
    Pydantic builds each dataclass and runs its ``__post_init__``.
    """
    from pydantic import ConfigDict, TypeAdapter

    document: Any = types.GenericAlias(dict, (str, cls))  # dict[str, cls], of a class known at run time
    return TypeAdapter(document, config=ConfigDict(extra="forbid", strict=True))


@functools.cache
def _lax(kind: type) -> TypeAdapter[Any]:
    """Reads the command line's text as a ``kind`` (int, float or bool), as pydantic's lax mode does:
    ``3e-3``, ``1_000``, true/false/yes/no/on/off/1/0; "1.5" is not an integer."""
    from pydantic import TypeAdapter

    return TypeAdapter(kind)


def _plain(kind: Any) -> Any:
    """``X`` for an optional ``X | None``; any other type as it is."""
    if typing.get_origin(kind) not in (typing.Union, types.UnionType):
        return kind
    options = [option for option in typing.get_args(kind) if option is not type(None)]
    return options[0] if len(options) == 1 else kind


@functools.cache
def _fields(kind: Any) -> dict[str, Any]:
    """The fields of a dataclass (or of an optional one) and their types; nothing for anything else."""
    cls = _plain(kind)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        return {}
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _without_legacy(cls: type, data: dict) -> dict:
    """``data`` less the keys that ``cls``, or a section in it, declares in ``LEGACY_KEYS`` (keys of
    configs saved by an older rnnkit that it reads and drops)."""
    fields = _fields(cls)
    legacy = set(getattr(cls, "LEGACY_KEYS", ())) - set(fields)
    kept = {}
    for key, value in data.items():
        if key in legacy:
            continue
        section = isinstance(value, dict) and _fields(fields.get(key))
        kept[key] = _without_legacy(fields[key], value) if section else value
    return kept


def _field(cls: type, key: str, what: str) -> tuple[list[str], str, Any]:
    """The sections and the field that a dotted ``key`` of a ``cls`` names, and the field's type; an
    unknown key is refused, with the keys known where it went wrong."""
    *sections, leaf = key.split(".")
    fields = _fields(cls)
    for part in sections:
        if not _fields(fields.get(part)):
            raise UsageError(f"{what}unknown config key {key!r} (known: {', '.join(fields)})")
        fields = _fields(fields[part])
    if leaf not in fields:
        raise UsageError(f"{what}unknown config key {key!r} (known: {', '.join(fields)})")
    return sections, leaf, fields[leaf]


def _assign(config: T, values: Iterable[tuple[str, Any]], what: str) -> T:
    """A new config: ``config`` with each value at its dotted key (in order), validated as a whole."""
    data = to_dict(config)
    for key, value in values:
        sections, leaf, _ = _field(type(config), key, what)
        node = data
        for part in sections:
            if not isinstance(node.get(part), dict):  # an optional section that is None: from its defaults
                node[part] = {}
            node = node[part]
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise UsageError(f"{key}: expected text, a number, true/false or a list, got {value!r}") from None
        node[leaf] = value
    return from_dict(type(config), data)


def _parse(raw: str, kind: Any, key: str) -> Any:
    """The command line's text for a field of type ``kind`` as a value of that type: a number as Python
    writes it (``3e-3``, ``1_000``), true/false/yes/no/on/off/1/0, a list as JSON or comma-separated,
    none or null for an optional field, and a string as given (unquoted when it is a JSON string, the
    form ``json.dumps`` gives). What fits no type is passed on as it is, for validation to refuse."""
    from pydantic import ValidationError

    if type(None) in typing.get_args(kind):  # an optional field
        if raw.strip().lower() in ("none", "null"):
            return None
        kind = _plain(kind)
    if kind is str:
        return _json(raw) if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw
    if typing.get_origin(kind) is list and not raw.lstrip().startswith("["):
        (item,) = typing.get_args(kind) or (Any,)
        return [_parse(part, item, key) for part in raw.split(",") if part]
    if kind in (int, float, bool):
        try:
            return _lax(kind).validate_python(raw.strip())
        except ValidationError as exc:
            raise UsageError(_expected(key, exc.errors()[0])) from None
    return _json(raw)


def _json(raw: str) -> Any:
    """``raw`` parsed as JSON, or ``raw`` itself where it is not JSON."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _describe(cls: type, error: Any, prefix: str) -> str:
    """One line for pydantic's first error in validating a ``cls``, naming the field by its dotted key."""
    location = error["loc"][1:]  # after the adapter's "config" key
    if error["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        section, kind = _key(cls, location[:-1], prefix)
        known = ", ".join(_fields(kind))
        return f"unknown config key {section + '.' if section else ''}{location[-1]} (known: {known})"
    key, kind = _key(cls, location, prefix)
    if error["type"] in ("value_error", "assertion_error"):  # a __post_init__ check: names its own field
        message = " ".join(str(error["ctx"]["error"]).splitlines())
        head = message.partition(":")[0]
        if not key or head == key.rpartition(".")[2]:
            return message
        return f"{key}.{message}" if head in _fields(kind) else f"{key}: {message}"
    if error["type"].startswith("missing"):
        return f"{key}: missing (a required config key)"
    return _expected(key, error)


def _key(cls: type, location: tuple, prefix: str) -> tuple[str, Any]:
    """The dotted key of an error's location in a ``cls`` (``data.sources[1]``) and the type there; the
    member names pydantic puts in the location of a union's error are left out."""
    key, kind = prefix.rstrip("."), cls
    for part in location:
        if isinstance(part, int):
            key, kind = f"{key}[{part}]", (typing.get_args(_plain(kind)) or (Any,))[0]
        elif part in _fields(kind):
            key, kind = f"{key}.{part}" if key else part, _fields(kind)[part]
    return key, kind


def _expected(key: str, error: Any) -> str:
    """``key: expected a number, got 'fast'``: what the field wanted and what it got."""
    wanted = _EXPECTED.get(error["type"])
    said = f"expected {wanted}" if wanted else " ".join(str(error["msg"]).splitlines())
    return f"{key}: {said}, got {error['input']!r}"


def check_text_data_fields(config: Any) -> None:
    """The checks the token-table tasks' data configs (classify, tag) share: a known tokenisation, a
    held-out fraction in (0, 0.9), positive sizes and counts."""
    if config.tokens not in ("auto", "char", "word"):
        raise ValueError(f"tokens: expected auto, char or word, got {config.tokens!r}")
    if not 0 < config.val_fraction < 0.9:
        raise ValueError(f"val_fraction: expected a fraction in (0, 0.9), got {config.val_fraction}")
    for name in ("max_tokens", "min_count", "max_vocab", "bigram_min_count", "max_bigrams"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name}: expected a positive integer, got {getattr(config, name)}")
