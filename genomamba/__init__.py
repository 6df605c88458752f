"""genomamba: long-context DNA language models built on a fused selective-scan kernel.

Importing this package is cheap on purpose: it must not import torch, so that the
command line answers `--help` and `validate` instantly on a login node.
"""

__version__ = "0.1.0"
