"""The output table of ``embed`` and ``predict``: Parquet, TSV or CSV by the file's suffix.

Written to a temporary sibling and renamed onto the target, so an interrupted or failed run
leaves no partial file (and an earlier result at that path stays whole until the new one is
complete).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".tsv": "tsv", ".txt": "tsv", ".csv": "csv"}


def table_format(path: str | os.PathLike) -> str:
    """``parquet``, ``tsv`` or ``csv`` from the suffix of ``path``.

    Raises:
        ValueError: any other suffix (named, with the accepted ones).
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(
            f"{path}: the output must end in one of {', '.join(FORMATS)} (got {suffix or 'none'!r})"
        )
    return FORMATS[suffix]


def write_table_atomic(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` to ``path`` in the format its suffix names, through a temporary sibling."""
    path = Path(path)
    kind = table_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if kind == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, sep="\t" if kind == "tsv" else ",", index=False, float_format="%.7g")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
