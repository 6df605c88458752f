"""Tensor operations the model needs, DNA-agnostic (torch only; never imports io/ or alphabet).

Public surface: :func:`selective_scan` and :func:`bidirectional_selective_scan` (backend dispatch),
:func:`backend_report` (for ``genomamba doctor``), the references ``selective_scan_ref`` /
``bidirectional_selective_scan_ref`` and the CPU backend ``selective_scan_chunked`` /
``bidirectional_selective_scan_chunked``. Importing this package imports torch; ``import genomamba`` does not.
"""

from genomamba.ops.dispatch import backend_report, bidirectional_selective_scan, selective_scan
from genomamba.ops.selective_scan_chunked import bidirectional_selective_scan_chunked, selective_scan_chunked
from genomamba.ops.selective_scan_ref import bidirectional_selective_scan_ref, selective_scan_ref

__all__ = [
    "selective_scan",
    "bidirectional_selective_scan",
    "backend_report",
    "selective_scan_ref",
    "bidirectional_selective_scan_ref",
    "selective_scan_chunked",
    "bidirectional_selective_scan_chunked",
]
