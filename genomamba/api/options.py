"""How the command functions of :mod:`genomamba.api` take their options and report bad ones.

* A tuning parameter left at ``None`` takes the library's own default (the one ``genomamba
  <command> --help`` shows): :func:`given` passes on only the parameters that were set, so no
  default is written twice.
* The library raises ``ValueError`` for options that cannot work together (a BED input without a
  genome, a stride without a window); inside :func:`usage_errors` those become
  :class:`~genomamba.errors.UsageError`, which the command line shows with its usage line (exit 2).
* A model argument is a model directory or the name of a model genomamba ships: :func:`model_path`
  turns it into the directory once, where the command function starts, so that everything below
  (and every output's provenance) sees a real directory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

from genomamba.errors import GenomambaError, UsageError

Log = Callable[[str], None]
Progress = Callable[[float], None]


def given(**values) -> dict:
    """``values`` without those that are None (left to the called function's default)."""
    return {name: value for name, value in values.items() if value is not None}


def text(path: str | os.PathLike | None) -> str | None:
    """A path as the text the configuration dataclasses hold (None stays None)."""
    return None if path is None else os.fspath(path)


def model_path(model: str | os.PathLike) -> str:
    """The model directory that ``model`` names (an existing path wins, then the name of a shipped
    model, checked against its sha256 pins: :func:`genomamba.model_directory.resolve_model`).

    Raises:
        ModelDirectoryError: a registered model whose weights this build does not ship, or a
            shipped file that is missing or changed (exit code 65).
    """
    from genomamba.model_directory import resolve_model

    return os.fspath(resolve_model(model))


@contextlib.contextmanager
def usage_errors() -> Iterator[None]:
    """Turn a ``ValueError`` raised inside into a :class:`~genomamba.errors.UsageError` with its
    message; the project's own errors pass unchanged."""
    try:
        yield
    except GenomambaError:  # a ValueError too (UsageError, ConfigError): already says what it is
        raise
    except ValueError as exc:
        raise UsageError(str(exc)) from exc

