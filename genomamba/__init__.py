"""genomamba: long-context DNA language models built on a fused selective-scan kernel.

Importing this package is cheap on purpose: it must not import torch, so that the
command line answers `--help` and `validate` instantly on a login node.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def __getattr__(name: str):
    # genomamba.load imports torch, so it is looked up on first use, not at import time
    if name == "load":
        from genomamba.api import load

        return load
    raise AttributeError(f"module 'genomamba' has no attribute {name!r}")
