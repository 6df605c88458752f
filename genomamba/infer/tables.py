"""The output table of ``embed`` and ``predict``: Parquet, TSV, CSV, bedGraph or bigWig by the file's suffix.

bedGraph (``.bedgraph``, ``.bdg``) is a genome-browser track of one value per window: a
``track type=bedGraph`` line, then ``record start end value`` rows (0-based, half-open, as BED),
for IGV, or for UCSC's ``bedGraphToBigWig`` without the track line and sorted (``grep -v '^track'
| sort -k1,1 -k2,2n``). Only ``predict`` writes it, and only for windows that do not overlap
(checked before any work: :func:`check_track_windows`). bigWig (``.bw``, ``.bigwig``) holds the
same values in UCSC's indexed binary format (:mod:`genomamba.infer.bigwig`).

Rows are written as they come, a chunk at a time (:func:`streaming_table`), so a whole genome in
short windows never has to fit in memory: the memory a run needs is that of one chunk of rows.
They go to a temporary sibling that is renamed onto the target only when the run is complete, so
an interrupted or failed run leaves no partial file (and an earlier result at that path stays
whole until the new one is). Parquet files get one row group per chunk and carry where they came
from (the ``genomamba`` key of the schema metadata: command, version, model directory and the
sha256 of its weights, options), readable with ``pyarrow.parquet.read_schema(path).metadata``.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pandas as pd

from genomamba.infer.bigwig import bigwig_appender
from genomamba.io.atomic import replacing
from genomamba.io.directories import made_directories

METADATA_KEY = b"genomamba"

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".tsv": "tsv", ".txt": "tsv", ".csv": "csv",
           ".bedgraph": "bedgraph", ".bdg": "bedgraph", ".bw": "bigwig", ".bigwig": "bigwig"}
#: The formats that hold one value per window: genome-browser tracks.
TRACK_FORMATS = ("bedgraph", "bigwig")
#: Binary formats that compress themselves: no ``.gz`` after them.
_BINARY = ("parquet", "bigwig")


def _suffixes(path: str | os.PathLike) -> tuple[str, bool]:
    """(the format's suffix, whether a ``.gz`` follows it)."""
    path = Path(path)
    if path.suffix.lower() == ".gz":
        return Path(path.stem).suffix.lower(), True
    return path.suffix.lower(), False


def table_format(path: str | os.PathLike) -> str:
    """``parquet``, ``tsv``, ``csv``, ``bedgraph`` or ``bigwig`` from the suffix of ``path``; the
    text formats may end in ``.gz`` as well (gzip-compressed as they are written).

    Raises:
        ValueError: any other suffix (named, with the accepted ones), or Parquet/bigWig with ``.gz``.
    """
    suffix, gz = _suffixes(path)
    if suffix not in FORMATS:
        raise ValueError(
            f"{path}: the output must end in one of {', '.join(FORMATS)}, the text ones optionally "
            f"followed by .gz (got {suffix + ('.gz' if gz else '') or 'none'!r})"
        )
    if gz and FORMATS[suffix] in _BINARY:
        raise ValueError(f"{path}: {'Parquet' if FORMATS[suffix] == 'parquet' else 'bigWig'} compresses its "
                         "data itself; drop the .gz")
    return FORMATS[suffix]


def require_table(path: str | os.PathLike, what: str) -> str:
    """:func:`table_format` of ``path`` for an output that cannot be a track (bedGraph, bigWig);
    ``what`` says why (it holds more than one value per window).

    Raises:
        ValueError: what table_format rejects, or a track suffix.
    """
    kind = table_format(path)
    if kind in TRACK_FORMATS:
        raise ValueError(f"{path}: {what}: write .parquet, .tsv or .csv")
    return kind


def _open_text(path: Path, gz: bool, closing: contextlib.ExitStack):
    """A text handle on ``path``, through gzip when ``gz`` (closed with ``closing``)."""
    if gz:
        return closing.enter_context(gzip.open(path, "wt", newline=""))
    return closing.enter_context(open(path, "w", newline=""))


def check_outputs_are_not_inputs(outputs, inputs) -> None:
    """Refuse an output path that names an input file (or its index): writing it would destroy
    the input. Paths are compared after resolving links and relative parts.

    Raises:
        ValueError: the first output that is an input (a usage error: exit 2 on the command line).
    """
    given = {}
    for path in inputs:
        if path is not None:
            resolved = Path(path).resolve()
            given[resolved] = path
            for suffix in (".fai", ".gzi"):
                given[resolved.with_name(resolved.name + suffix)] = f"{path}{suffix}"
    for out in outputs:
        clash = given.get(Path(out).resolve()) if out is not None else None
        if clash is not None:
            raise ValueError(
                f"{out}: the output would overwrite the input {clash}; choose another output path"
            )


def check_track_windows(window: int | None, stride: int | None, last: str) -> None:
    """A track (bedGraph, bigWig) needs intervals that do not overlap: whole records, or windows whose
    stride is at least their width, without ``--last shift`` (which moves the last one back).

    Raises:
        ValueError: overlapping windows, saying what to change.
    """
    if window is not None and ((stride or window) < window or last == "shift"):
        raise ValueError(f"a track cannot hold overlapping windows (--window {window}, --stride "
                         f"{stride or window}, --last {last}): use a stride of at least the window and "
                         "--last keep or drop, or write a .tsv/.parquet table")


@contextlib.contextmanager
def streaming_table(
    path: str | os.PathLike,
    provenance: dict | None = None,
    *,
    track: str | None = None,
    chromosomes: Sequence[tuple[str, int]] | None = None,
) -> Iterator[Callable[[pd.DataFrame], None]]:
    """Yield ``append(frame)``, which adds rows to the table for ``path``; on leaving the block the
    table is renamed onto ``path``, or removed if the block raised (``path`` is then untouched).

    Every frame must have the first one's columns. ``provenance`` (JSON-able) goes into a Parquet
    file's schema metadata (text formats have none). A bedGraph or bigWig file takes the ``record``,
    ``start`` and ``end`` columns and the one named ``track``; a bigWig also needs the
    ``(chromosome, length)`` list of its header (:func:`genomamba.infer.bigwig.track_chromosomes`).

    Raises:
        ValueError: an unknown suffix, a track without ``track`` or a bigWig without ``chromosomes``
            (before the block runs); a block that appended no row (nothing is written: an empty
            table has no columns).
        UnavailableError: a bigWig without pyBigWig installed.
    """
    path = Path(path)
    kind = table_format(path)
    if kind in TRACK_FORMATS and track is None:
        raise ValueError(f"{path}: a track holds one value per window: name its column")
    if kind == "bigwig" and chromosomes is None:
        raise ValueError(f"{path}: a bigWig needs the chromosomes and lengths of its header")
    rows = 0
    # folders made for the table are removed again if it fails, as its temporary is
    with made_directories(path.parent), replacing(path) as tmp, contextlib.ExitStack() as closing:
        gz = _suffixes(path)[1]
        if kind == "parquet":
            write = _parquet_appender(tmp, provenance, closing)
        elif kind == "bedgraph":
            write = _bedgraph_appender(_open_text(tmp, gz, closing), track)
        elif kind == "bigwig":
            write = bigwig_appender(tmp, chromosomes, track, closing)
        else:
            write = _text_appender(_open_text(tmp, gz, closing), "\t" if kind == "tsv" else ",")

        def append(frame: pd.DataFrame) -> None:
            nonlocal rows
            write(frame)
            rows += len(frame)

        yield append
        if rows == 0:
            raise ValueError(f"{path}: no rows to write")


def _text_appender(handle, sep: str):
    """``append(frame)`` writing delimited rows to ``handle``, the header with the first frame."""
    first = True

    def append(frame: pd.DataFrame) -> None:
        nonlocal first
        frame.to_csv(handle, sep=sep, index=False, header=first, float_format="%.7g")
        first = False

    return append


def _bedgraph_appender(handle, column: str):
    """``append(frame)`` writing ``record start end <column>`` rows to ``handle`` after one track line."""
    handle.write(f'track type=bedGraph name="{column}" description="genomamba predict: {column}"\n')

    def append(frame: pd.DataFrame) -> None:
        frame[["record", "start", "end", column]].to_csv(handle, sep="\t", index=False, header=False,
                                                         float_format="%.7g")

    return append


def _parquet_appender(path: Path, provenance: dict | None, closing: contextlib.ExitStack):
    """``append(frame)`` writing one row group per frame; the writer opens on the first frame,
    whose schema (with the provenance metadata) every later frame is converted to."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    state: dict = {}

    def append(frame: pd.DataFrame) -> None:
        if "writer" not in state:
            schema = pa.Schema.from_pandas(frame, preserve_index=False)
            if provenance is not None:
                schema = schema.with_metadata({**(schema.metadata or {}),
                                               METADATA_KEY: json.dumps(provenance).encode()})
            state["schema"] = schema
            state["writer"] = closing.enter_context(pq.ParquetWriter(path, schema))
        table = pa.Table.from_pandas(frame, schema=state["schema"], preserve_index=False)
        state["writer"].write_table(table)

    return append


def read_provenance(path: str | os.PathLike) -> dict | None:
    """The provenance a Parquet table written here carries, or None."""
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata[METADATA_KEY]) if METADATA_KEY in metadata else None
