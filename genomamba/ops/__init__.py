"""Tensor operations the model needs, DNA-agnostic (torch only; never imports io/ or alphabet).

Public surface: :func:`selective_scan` and :func:`bidirectional_selective_scan` (backend dispatch),
:func:`backend_report` (for ``genomamba doctor``), and the references ``selective_scan_ref`` /
``bidirectional_selective_scan_ref``. Importing this package imports torch; ``import genomamba`` does not.
The chunked CPU backend lives in :mod:`genomamba.ops.selective_scan_chunked` (use it through the dispatcher).
Note: the attribute ``genomamba.ops.selective_scan_ref`` is the *function*; import the module by its full
name (``importlib.import_module("genomamba.ops.selective_scan_ref")``) when you need the module.
"""

from genomamba.ops.dispatch import backend_report, bidirectional_selective_scan, selective_scan
from genomamba.ops.selective_scan_ref import bidirectional_selective_scan_ref, selective_scan_ref

__all__ = [
    "selective_scan",
    "bidirectional_selective_scan",
    "backend_report",
    "selective_scan_ref",
    "bidirectional_selective_scan_ref",
]
