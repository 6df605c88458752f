"""``genomamba embed --per-base``: one embedding per base of whole records, as ``.npy`` arrays.

The output is a directory::

    OUT/
      index.tsv        file, record, start, end, npy, row: one line per record (0-based,
                       half-open; ``row`` is the record's first row in ``npy``)
      0000_chrX.npy    (length, d_model) float32 or float16, one per record, memory-mappable:
                       numpy.load(path, mmap_mode="r")[start_row + i] is base i's embedding
      manifest.json    what made it: model directory and the sha256 of its weights, layer,
                       dtype, width, conjoin, the genomamba version

Each record runs through the model in one exact pass (:mod:`genomamba.infer.whole_records`), its
embeddings written to the array chunk by chunk, so neither the record's activations nor its
embeddings have to fit in memory. Embeddings are those of ``GenomambaModel.embed(pooling=None)``:
the residual stream after ``layer`` layers through the final norm, strands averaged for a PS
model, and with ``conjoin`` (default for PH models) averaged with the reverse complement's. With
float16 and conjoining, the forward strand's value is rounded to float16 before the reverse
complement's is averaged in (a second rounding, at most one float16 ulp).

The directory is written under a temporary name beside it and renamed into place when every
record is done: a failed run leaves nothing. An existing directory is never replaced.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from genomamba.errors import InputDataError
from genomamba.infer.runner import output_provenance
from genomamba.infer.tables import check_outputs_are_not_inputs
from genomamba.infer.whole_records import RecordStreamer, StreamSettings, per_base_array
from genomamba.io.atomic import move_directory_into_place, staged_directory
from genomamba.io.directories import made_directories
from genomamba.runtime.log import stderr_log

INDEX_FILE = "index.tsv"
MANIFEST_FILE = "manifest.json"
INDEX_COLUMNS = ("file", "record", "start", "end", "npy", "row")
DTYPES = ("float32", "float16")


def embed_per_base(
    model_dir: str | os.PathLike,
    fasta: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    layer: int | None = None,
    dtype: str = "float32",
    conjoin: bool | None = None,
    lenient: bool = False,
    settings: StreamSettings | None = None,
    log: Callable[[str], None] | None = None,
    progress: Callable[[float], None] | None = None,
) -> dict:
    """Write the per-base embeddings of every record of the ``fasta`` files to the directory
    ``out`` (see the module docstring).

    Returns:
        ``{"out", "records", "bases", "width", "dtype"}``.

    Raises:
        ValueError: ``out`` exists or names an input, an unknown dtype, a ``layer`` the model
            does not have (all before any work).
        InputDataError: an invalid FASTA file, or no sequence at all (nothing is written).
        ModelDirectoryError, UnavailableError: see :class:`~genomamba.infer.whole_records.RecordStreamer`.
    """
    log = log or stderr_log
    settings = settings or StreamSettings()
    out = Path(out)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    fasta = [str(path) for path in fasta]
    if not fasta:
        raise ValueError("give at least one FASTA file")
    check_outputs_are_not_inputs([out], (*fasta, model_dir))
    if out.exists() or out.is_symlink():
        raise ValueError(f"{out} exists: per-base embeddings go to a new directory (remove it or choose "
                         "another)")
    if layer is not None:
        from genomamba.model_directory import read_config

        n_layer = read_config(model_dir)["architecture"]["n_layer"]
        if not 1 <= layer <= n_layer:
            raise ValueError(f"--layer must be 1..{n_layer} (the model's layers), got {layer}")

    from genomamba.infer.model_inputs import fasta_windows

    streamer = RecordStreamer(model_dir, settings, log)
    width = streamer.config.d_model
    rows = []
    with made_directories(out.parent), staged_directory(out) as tmp:
        for record in fasta_windows(fasta, lenient=lenient):
            name = _file_name(len(rows), record.record)
            array = per_base_array(tmp / name, len(record.ids), width, dtype)
            streamer.per_base(record.record, record.ids, array, work_dir=tmp, layer=layer,
                              conjoin=conjoin, progress=progress)
            array.flush()
            del array
            rows.append((record.file, record.record, record.start, record.end, name, 0))
        if not rows:
            raise InputDataError(f"{', '.join(fasta)}: no sequence to read (every record is empty)")
        pd.DataFrame(rows, columns=list(INDEX_COLUMNS)).to_csv(tmp / INDEX_FILE, sep="\t", index=False)
        options = {"layer": layer, "dtype": dtype, "conjoin": conjoin, "lenient": lenient,
                   "chunk": streamer.plan.chunk, "command": "embed --per-base"}
        manifest = {**output_provenance(model_dir, options), "width": width,
                    "index": INDEX_FILE, "index_columns": list(INDEX_COLUMNS)}
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        move_directory_into_place(tmp, out)  # an existing directory was refused above
    bases = sum(end - start for _, _, start, end, _, _ in rows)
    log(f"embed: per-base embeddings of {len(rows)} records ({bases:,} bases, width {width}, {dtype}) "
        f"written to {out}/")
    return {"out": str(out), "records": len(rows), "bases": bases, "width": width, "dtype": dtype}


def _file_name(index: int, record: str) -> str:
    """``NNNN_<record>.npy``: the record's place (unique where names repeat across files) and its
    name, with what a file name cannot hold replaced by ``_``."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", record)[:100] or "record"
    return f"{index:04d}_{safe}.npy"


def read_per_base(directory: str | os.PathLike, record: str, *, mmap: bool = True) -> np.ndarray:
    """The (length, width) embeddings of ``record`` in a per-base output directory.

    Raises:
        KeyError: no such record in its index.
    """
    directory = Path(directory)
    index = pd.read_csv(directory / INDEX_FILE, sep="\t", dtype={"record": str})
    match = index[index["record"] == record]
    if match.empty:
        raise KeyError(f"{directory}: no record {record!r} in {INDEX_FILE}")
    row = match.iloc[0]
    array = np.load(directory / row["npy"], mmap_mode="r" if mmap else None)
    return array[int(row["row"]) : int(row["row"]) + int(row["end"]) - int(row["start"])]
