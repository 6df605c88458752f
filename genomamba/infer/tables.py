"""The output table of ``embed`` and ``predict``: Parquet, TSV or CSV by the file's suffix.

Written to a temporary sibling and renamed onto the target, so an interrupted or failed run
leaves no partial file (and an earlier result at that path stays whole until the new one is
complete). Parquet files also carry where they came from (the ``genomamba`` key of the schema
metadata: command, version, model directory and the sha256 of its weights, options), readable
with ``pyarrow.parquet.read_schema(path).metadata``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from genomamba.io.atomic import replacing

METADATA_KEY = b"genomamba"

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


def write_table_atomic(frame: pd.DataFrame, path: str | os.PathLike, provenance: dict | None = None) -> Path:
    """Write ``frame`` to ``path`` in the format its suffix names, through a temporary sibling;
    ``provenance`` (JSON-able) goes into a Parquet file's schema metadata (text formats have none)."""
    path = Path(path)
    kind = table_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        if kind == "parquet":
            _write_parquet(frame, tmp, provenance)
        else:
            frame.to_csv(tmp, sep="\t" if kind == "tsv" else ",", index=False, float_format="%.7g")
    return path


def _write_parquet(frame: pd.DataFrame, path: Path, provenance: dict | None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if provenance is not None:
        metadata = {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(provenance).encode()}
        table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path)


def read_provenance(path: str | os.PathLike) -> dict | None:
    """The provenance a Parquet table written here carries, or None."""
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata[METADATA_KEY]) if METADATA_KEY in metadata else None
