"""Optional dependencies: import one on first use, or say which extra installs it (exit 69).

Each optional feature (bigWig tracks, VCF output, LoRA, ...) names its package and extra once, at
the place that needs it, so a missing package is one ``error:`` line with the fix rather than an
ImportError traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from genomamba.errors import UnavailableError


def optional_module(name: str, needed_for: str, extra: str, instead: str = "") -> ModuleType:
    """Import module ``name``.

    Args:
        name: the import name (``pyBigWig``, ``pysam``, ``peft``).
        needed_for: what the caller was asked to do, as the message's subject ("writing a bigWig track").
        extra: genomamba's extra that installs it.
        instead: an alternative that needs no extra, shown in parentheses ("write a .bedgraph").

    Raises:
        UnavailableError: the module is missing or fails to import (exit 69).
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        alternative = f" (or {instead})" if instead else ""
        raise UnavailableError(
            f"{needed_for} needs {name}, which cannot be imported ({exc}): "
            f"pip install 'genomamba[{extra}]'{alternative}"
        ) from exc
