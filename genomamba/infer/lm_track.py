"""``genomamba track``: per-base masked-LM scores of whole records, as genome tracks or a table.

For every A/C/G/T base of every record, from one exact pass of the masked-LM over the whole
record (:mod:`genomamba.infer.whole_records`), the model's distribution over the four bases at
that position (a softmax over the A, C, G, T logits, as ``score-variants`` reads it) gives:

* ``ref_ll``: log P(the reference base), natural log (0 is certain, log(1/4) = -1.386 uninformed);
* ``entropy``: the entropy of the distribution in nats (0 certain, log 4 = 1.386 uniform).

The pass is unmasked: the model sees the base it scores, as in the ``embed`` pass, not the
pseudo-log-likelihood of ``genomamba.api`` (one forward pass per masked position, which a
chromosome cannot afford). PH models are conjoined with the reverse complement as in evaluation,
PS models are strand-symmetric by construction. N bases get no value.

Outputs by suffix, as ``predict`` writes them (:func:`genomamba.infer.tables.streaming_table`):
a table (Parquet, TSV, CSV: ``file record start end base ref_ll entropy``, one row per scored
base) or a track of one score (bedGraph, bigWig: 1-base intervals; ``score`` picks which);
``track_out`` adds a track in the same pass. Rows are written as they come, a chunk of bases at a
time; a failed run leaves no output.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from genomamba.alphabet import A_ID, BASES, T_ID
from genomamba.errors import InputDataError
from genomamba.infer.bigwig import require_pybigwig, track_chromosomes
from genomamba.infer.runner import output_provenance
from genomamba.infer.tables import TRACK_FORMATS, check_outputs_are_not_inputs, streaming_table, table_format
from genomamba.infer.whole_records import RecordStreamer, StreamSettings, per_base_array, work_directory
from genomamba.runtime.log import stderr_log

#: ``--score`` name -> the column it is.
SCORES = {"ref-ll": "ref_ll", "entropy": "entropy"}
COLUMNS = ("file", "record", "start", "end", "base", "ref_ll", "entropy")
#: Bases per table frame (one Parquet row group, one bigWig append).
ROWS_PER_FRAME = 1 << 20
#: A record's logits stay in memory up to this size, beyond it they go to the scratch disk.
LOGITS_IN_MEMORY = 256 << 20


def lm_track(
    model_dir: str | os.PathLike,
    fasta: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    score: str = "ref-ll",
    track_out: str | os.PathLike | None = None,
    conjoin: bool | None = None,
    lenient: bool = False,
    settings: StreamSettings | None = None,
    log: Callable[[str], None] | None = None,
    progress: Callable[[float], None] | None = None,
) -> dict:
    """Score every base of every record of ``fasta`` and write ``out`` (and ``track_out``).

    Returns:
        ``{"out", "records", "rows", "score"}``.

    Raises:
        ValueError: an unknown suffix or score, a ``track_out`` that is not a track, an output
            that names an input (before any work).
        InputDataError: an invalid FASTA file; a model without a masked-LM head; no A/C/G/T base.
        ModelDirectoryError, UnavailableError: see :class:`~genomamba.infer.whole_records.RecordStreamer`;
            a bigWig without pyBigWig.
    """
    log = log or stderr_log
    settings = settings or StreamSettings()
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
    outputs = [out] + ([track_out] if track_out is not None else [])
    kinds = [table_format(path) for path in outputs]
    if track_out is not None and kinds[1] not in TRACK_FORMATS:
        raise ValueError(f"{track_out}: a track output must end in .bedgraph or .bdg (or with .gz), .bw "
                         "or .bigwig")
    fasta = [str(path) for path in fasta]
    if not fasta:
        raise ValueError("give at least one FASTA file")
    check_outputs_are_not_inputs(outputs, (*fasta, model_dir))
    from genomamba.model_directory import read_config

    task = read_config(model_dir)["architecture"].get("head", {}).get("task")
    if task != "mlm":
        raise InputDataError(f"{model_dir}: per-base scores need a masked-LM head, not {task!r} "
                             "(use a pretrained model)")
    chromosomes = None
    if "bigwig" in kinds:
        require_pybigwig()
        chromosomes = track_chromosomes(fasta, lenient=lenient)

    from genomamba.infer.model_inputs import fasta_windows

    streamer = RecordStreamer(model_dir, settings, log)
    provenance = output_provenance(model_dir, {"command": "track", "score": score, "conjoin": conjoin,
                                               "lenient": lenient, "chunk": streamer.plan.chunk})
    records = rows = 0
    with contextlib.ExitStack() as stack:
        appends = [stack.enter_context(streaming_table(path, provenance, track=SCORES[score],
                                                       chromosomes=chromosomes)) for path in outputs]
        scratch = stack.enter_context(work_directory(out))
        for record in fasta_windows(fasta, lenient=lenient):
            for frame in _record_frames(streamer, record, scratch, conjoin, progress):
                for append in appends:
                    append(frame)
                rows += len(frame)
            records += 1
        if rows == 0:
            raise InputDataError(f"{', '.join(fasta)}: no A, C, G or T base to score")
    shown = [f"{path} ({SCORES[score]})" if kind in TRACK_FORMATS else str(path)
             for path, kind in zip(outputs, kinds, strict=True)]
    log(f"track: {rows:,} bases of {records} records scored, written to {', '.join(shown)}")
    return {"out": str(out), "records": records, "rows": rows, "score": SCORES[score]}


def _record_frames(streamer: RecordStreamer, record, scratch, conjoin, progress) -> Iterator[pd.DataFrame]:
    """The COLUMNS rows of one record's A/C/G/T bases, ROWS_PER_FRAME positions at a time."""
    length, vocab = len(record.ids), streamer.config.vocab_size
    big = length * vocab * 4 > LOGITS_IN_MEMORY
    logits = per_base_array(scratch / "logits.npy" if big else None, length, vocab, np.float32)
    try:
        streamer.per_base(record.record, record.ids, logits, work_dir=scratch, what="logits", conjoin=conjoin,
                          progress=progress)
        for first in range(0, length, ROWS_PER_FRAME):
            last = min(first + ROWS_PER_FRAME, length)
            frame = per_base_scores(record.ids[first:last], logits[first:last])
            if len(frame):
                frame["start"] += record.start + first
                frame["end"] = frame["start"] + 1
                frame.insert(0, "record", record.record)
                frame.insert(0, "file", record.file)
                yield frame[list(COLUMNS)]
    finally:
        del logits
        if big:
            os.unlink(scratch / "logits.npy")


def per_base_scores(ids: np.ndarray, logits: np.ndarray) -> pd.DataFrame:
    """``start`` (offset in ``ids``), ``base``, ``ref_ll`` and ``entropy`` of each A/C/G/T position of
    ``ids`` (n,) from masked-LM ``logits`` (n, vocab): the softmax over the four bases' logits."""
    scored = np.flatnonzero((ids >= A_ID) & (ids <= T_ID))
    acgt = torch.from_numpy(np.ascontiguousarray(logits[scored, A_ID : T_ID + 1], dtype=np.float32))
    log_p = torch.log_softmax(acgt, dim=-1)
    ref = torch.from_numpy(ids[scored].astype(np.int64) - A_ID)
    ref_ll = log_p.gather(1, ref[:, None])[:, 0]
    entropy = -(log_p.exp() * log_p).sum(1)
    letters = np.frombuffer(BASES[:4].encode(), dtype="S1")
    return pd.DataFrame({"start": scored.astype(np.int64), "base": letters[ids[scored] - A_ID].astype(str),
                         "ref_ll": ref_ll.numpy(), "entropy": entropy.numpy()})
