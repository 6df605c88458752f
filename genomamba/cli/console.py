"""What the commands print besides their results: messages and warnings on stderr, progress bars.

Results go to stdout or ``-o``; everything here goes to stderr (DESIGN.md §2), so a table piped
into another tool stays clean.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

import click


def log(message: str) -> None:
    """One line on stderr: the ``log`` every command hands the library."""
    click.echo(message, err=True)


def warn(message: str) -> None:
    """A ``warning:`` line on stderr."""
    click.echo(f"warning: {message}", err=True)


@contextlib.contextmanager
def progress_bar(
    desc: str, *, unit: str, total: Callable[[], int | None] | None = None
) -> Iterator[Callable[[float], None] | None]:
    """A tqdm bar on stderr for the block, only when stderr is a terminal: yields its ``update``
    (None otherwise) for the library's ``progress``. ``total`` is asked only when a bar is shown.
    The bar is closed before an error leaves the block, so that the error's line is not overwritten.
    """
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=total() if total else None, unit=unit, unit_scale=True, desc=desc, file=sys.stderr,
               leave=False)
    try:
        yield bar.update
    finally:
        bar.close()
