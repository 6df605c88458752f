"""Configuration dataclasses built strictly from plain mappings (YAML, JSON, command-line values).

The rules every config of genomamba follows (DESIGN.md §4: unknown keys are errors), in one place:

* :func:`reject_unknown` -- a key that names no field is an error naming its full dotted path and
  the closest field name: ``model.mixer.d_stat: unknown key (did you mean d_state?)``.
* :func:`from_mapping` -- builds a dataclass, nested dataclass fields included, checking every
  given value against its field's type *before* the dataclass's ``__post_init__`` checks ranges.
  A string where a number belongs is then an error naming the key, not a TypeError raised deep
  inside the model after outputs were written.
* :class:`ConfigError` -- carries the key at fault, so a config holding another one under a name
  prefixes that name (:meth:`ConfigError.within`) and a command names the file the key came from
  (:meth:`ConfigError.in_source`). Its exit code is 2, a usage error.

No torch and no numpy here: commands validate configs before importing either.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from genomamba.errors import EXIT_USAGE, GenomambaError

T = TypeVar("T")

_PLURALS = {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}
_SINGULARS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


class ConfigError(GenomambaError, ValueError):
    """An invalid or unknown configuration key or value.

    ``problem`` says what is wrong; ``key`` is the dotted path of the key at fault (None when no
    single key is); ``source`` names where the value came from (a file), shown first:
    ``run.yaml: model.mixer.d_state: must be a positive integer, got -1``.
    """

    exit_code = EXIT_USAGE

    def __init__(self, problem: str, key: str | None = None, source: str | None = None) -> None:
        self.problem, self.key, self.source = problem, key, source
        text = f"{key}: {problem}" if key else problem
        super().__init__(f"{source}: {text}" if source else text)

    def within(self, prefix: str) -> ConfigError:
        """This error as seen from a config that holds the faulty one under the key ``prefix``."""
        if not prefix:
            return self
        return ConfigError(self.problem, f"{prefix}.{self.key}" if self.key else prefix, self.source)

    def in_source(self, source: str | None) -> ConfigError:
        """This error naming ``source`` (a file name) as where the value came from."""
        return self if not source else ConfigError(self.problem, self.key, source)


def field_names(cls: type) -> list[str]:
    """The field names of the dataclass ``cls``, in declaration order."""
    return [f.name for f in dataclasses.fields(cls)]


def reject_unknown(data: Mapping, allowed: type | Iterable[str], path: str = "") -> None:
    """Raise :class:`ConfigError` when ``data`` has a key outside ``allowed`` (a dataclass, whose
    field names are allowed, or the names themselves). ``path`` is the dotted path of ``data``
    in the whole config (``"model.mixer"``), so the message names the full path of the key and
    suggests the closest allowed name (or lists them all when none is close)."""
    known = field_names(allowed) if isinstance(allowed, type) else list(allowed)
    unknown = [str(key) for key in data if key not in known]
    if not unknown:
        return
    close = difflib.get_close_matches(unknown[0], known, n=1, cutoff=0.7)
    problem = "unknown key " + (f"(did you mean {close[0]}?)" if close else f"(known: {', '.join(known)})")
    if len(unknown) > 1:
        problem += f"; also unknown beside it: {', '.join(unknown[1:])}"
    raise ConfigError(problem, _join(path, unknown[0]))


def from_mapping(cls: type[T], data: Any, path: str = "") -> T:
    """An instance of the dataclass ``cls`` from the mapping ``data``, fields left out taking
    their defaults.

    Checks, in order: ``data`` is a mapping; every key is a field (:func:`reject_unknown`); every
    value has its field's type (a nested dataclass field takes a mapping, built the same way);
    then ``cls.__post_init__`` checks values and ranges. ``path`` is the dotted path of ``data``
    in the whole config; every error names its key by the full path.

    Raises:
        ConfigError: naming the key and what is wrong with it.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"must be a mapping of keys to values, got {data!r}", path or None)
    reject_unknown(data, cls, path)
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in data.items():
        hint, where = hints[key], _join(path, key)
        if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
            value = from_mapping(hint, value, where)
        else:
            check_type(value, hint, where)
        values[key] = value
    try:
        return cls(**values)
    except ConfigError as exc:
        raise exc.within(path) from None


def check_type(value: Any, hint: Any, key: str) -> None:
    """Raise :class:`ConfigError` naming ``key`` when ``value`` does not have the type ``hint``
    (a type annotation: ``int``, ``float``, ``list[str]``, ``int | None``, a dataclass ...).

    An integer is a number but a boolean is neither; a float is not an integer, even ``16.0``.
    """
    if _matches(value, hint):
        return
    problem = f"must be {_describe(hint)}, got {value!r}"
    if isinstance(value, str) and _accepts(hint, float) and _is_number(value):
        if "e" in value.lower():  # PyYAML follows YAML 1.1: 1e-3, without a decimal point, is text
            problem += " (text, not a number: write exponents with a decimal point, as in 1.0e-3)"
        else:
            problem += " (text, not a number: remove the quotes)"
    raise ConfigError(problem, key)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _union_args(hint: Any) -> tuple | None:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return None


def _matches(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    if (args := _union_args(hint)) is not None:
        return any(_matches(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    origin = typing.get_origin(hint) or hint
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        items = typing.get_args(hint)
        return not items or all(_matches(item, items[0]) for item in value)
    if origin is dict or dataclasses.is_dataclass(origin):
        return isinstance(value, Mapping) or isinstance(value, origin)
    return not isinstance(origin, type) or isinstance(value, origin)


def _accepts(hint: Any, kind: type) -> bool:
    args = _union_args(hint)
    return kind in args if args is not None else hint is kind


def _describe(hint: Any) -> str:
    if (args := _union_args(hint)) is not None:
        return " or ".join(_describe(arg) for arg in args)
    if hint is type(None):
        return "null"
    if hint in _SINGULARS:
        return _SINGULARS[hint]
    origin = typing.get_origin(hint) or hint
    if origin in (list, tuple):
        items = typing.get_args(hint)
        return f"a list of {_PLURALS.get(items[0], 'values')}" if items else "a list"
    if origin is dict or dataclasses.is_dataclass(origin):
        return "a mapping of keys to values"
    return getattr(origin, "__name__", str(origin))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
