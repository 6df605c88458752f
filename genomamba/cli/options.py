"""Option helpers: defaults read from the configuration dataclasses, and which options were given.

:class:`ConfigDefault` makes an option's default the field of the same name of a run
configuration (``PretrainConfig``, ``FinetuneConfig``, ...), read when first needed (``--help``,
or a run without the option). ``--help`` then shows the dataclass's value, so the two cannot
drift, and a command's module imports no more than click until it runs.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable, Iterable
from typing import Any

import click
from click.core import ParameterSource


@functools.cache
def field_default(config: str, name: str) -> Any:
    """The default of the field ``name`` of the dataclass ``config`` (``"module:Class"``).

    Raises:
        KeyError: the dataclass has no such field, or the field has no default.
    """
    module, _, cls = config.partition(":")
    fields = {f.name: f for f in dataclasses.fields(getattr(importlib.import_module(module), cls))}
    spec = fields[name]
    if spec.default is not dataclasses.MISSING:
        return spec.default
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    raise KeyError(f"{config}.{name} has no default")


class ConfigDefault(click.Option):
    """An option whose default is a configuration dataclass's field default, shown in ``--help``.

    ``config`` names the dataclass (``"module:Class"``); ``field`` the field (default: the
    option's name); ``shown`` turns the field's value into the option's (e.g. a list of seeds into
    ``"1,2,3"``). Give ``type`` explicitly (click would guess it from the default). Not for flags,
    whose default is simply off.
    """

    def __init__(self, *decls, config: str, field: str | None = None,
                 shown: Callable[[Any], Any] | None = None, **attrs) -> None:
        if "type" not in attrs:
            raise TypeError(f"{decls}: ConfigDefault needs an explicit type")
        self.config, self.field, self.shown = config, field, shown
        attrs.setdefault("show_default", True)
        super().__init__(*decls, default=self._config_default, **attrs)

    def _config_default(self) -> Any:
        value = field_default(self.config, self.field or self.name)
        return self.shown(value) if self.shown else value

    def get_default(self, ctx: click.Context, call: bool = True) -> Any:
        # always called: --help shows the value, not "(dynamic)"
        return super().get_default(ctx, call=True)


class LabelledInput(click.ParamType):
    """A labelled-data input, ``FILE`` or ``LABEL=FILE`` (:func:`genomamba.io.labels.parse_input`),
    whose file exists; the value is kept as given."""

    name = "FILE|LABEL=FASTA"

    def convert(self, value, param, ctx):
        from pathlib import Path

        from genomamba.io.labels import parse_input

        path = parse_input(value)[1]
        if not Path(path).is_file():
            self.fail(f"no such file: {path}", param, ctx)
        return value


class ModelDirectory(click.Path):
    """A model argument: an existing directory (as ``click.Path(exists=True, file_okay=False)``
    checks it), or the name of a model genomamba registers (:mod:`genomamba.pretrained`; ``genomamba
    doctor`` lists them). The value is kept as given: the library resolves it, and reports a
    registered model that this build does not ship (exit 65)."""

    def __init__(self) -> None:
        super().__init__(exists=True, file_okay=False)

    def convert(self, value, param, ctx):
        import os

        from genomamba.pretrained import is_registered

        if not os.path.exists(value) and is_registered(value):  # an existing path wins
            return value
        return super().convert(value, param, ctx)


def from_command_line(name: str, value: Any) -> Any:
    """``value`` when the option ``name`` of the running command was given (on the command line or
    in the environment), None when it is its default: for options whose default must yield to a
    value from a file (a run YAML)."""
    source = click.get_current_context().get_parameter_source(name)
    return None if source in (None, ParameterSource.DEFAULT) else value


def changed_options(names: Iterable[str]) -> list[str]:
    """The options among ``names`` of the running command that were given a value other than their
    default, spelled ``--name``."""
    ctx = click.get_current_context()
    params = {p.name: p for p in ctx.command.params}
    return [f"--{name.replace('_', '-')}" for name in names
            if from_command_line(name, True) and ctx.params[name] != params[name].get_default(ctx)]
