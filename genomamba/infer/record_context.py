"""``--context record`` for ``embed`` and ``predict``: each window's value from its whole record.

With ``--context window`` (the default) a window is run through the model alone, so a base near
its edge sees nothing beyond it. With ``--context record`` each record runs once through the model
in one exact streamed pass in planned memory (:class:`~genomamba.infer.whole_records.RecordStreamer`,
as for ``embed --per-base``), and each window's embedding or prediction is made from the record's
hidden states at the window's positions (:mod:`genomamba.model.streaming_windows`): every base of
the window has read the whole record in both directions. The windows (``--window``, ``--stride``,
``--last``, ``--max-n-fraction``), their order and the table's columns are those of ``--context
window``; without ``--window`` each record is its own one window and the values are those of the
default, computed in planned memory.

Cost: one streamed pass per record (two for conjoined models), whatever the windows, and a
record's window values (windows x width floats) in host memory until the record is done.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from genomamba.infer.model_inputs import MostlyN, SequenceWindow, windows_of
from genomamba.infer.sharding import Shard
from genomamba.infer.whole_records import RecordStreamer


def run_over_records(
    streamer: RecordStreamer,
    records: Iterable[SequenceWindow],
    compute: Callable,
    *,
    window: int | None,
    stride: int | None,
    last: str,
    max_n_fraction: float,
    work_dir: str | os.PathLike,
    progress: Callable[[float], None] | None = None,
    shard: Shard | None = None,
) -> Iterator[tuple[list[SequenceWindow], np.ndarray]]:
    """For each of the whole ``records`` (as :func:`~genomamba.infer.model_inputs.fasta_windows`
    gives them without a window), its windows and their (n, k) float32 outputs, the windows cut by
    ``window``/``stride``/``last`` as window context cuts them, those with more than
    ``max_n_fraction`` N left out (counted in one warning at the end). ``compute(model, input_ids,
    spans, chunk=, device=, residual=, store_dir=, progress=)`` gives a record's outputs, (n, ...)
    for its n ``[start, end)`` spans (offsets in the record), from the streaming functions of
    :mod:`genomamba.model.streaming_windows`; it runs under the plan of ``streamer``
    (:meth:`~genomamba.infer.whole_records.RecordStreamer.run`), its residual stream in
    ``work_dir`` when it goes to disk. A record with no window left is not run. ``shard``: only the
    records of this process are run (the i-th record with a window left is unit i), the others
    counted in ``progress`` as if done; every record is still cut, so the N tally is the whole input's.

    Raises:
        UnavailableError: as :meth:`~genomamba.infer.whole_records.RecordStreamer.run`.
        ValueError: a bad window, stride or ``max_n_fraction``.
    """
    kept = MostlyN(max_n_fraction)
    unit = -1
    for record in records:
        windows = [w for w in windows_of(record, window=window, stride=stride, last=last) if kept.keeps(w)]
        if not windows:
            continue
        unit += 1
        if shard is not None and not shard.mine(unit):
            if progress is not None:
                progress(len(record.ids))
            continue
        spans = [(w.start - record.start, w.end - record.start) for w in windows]
        values = streamer.run(record.record, record.ids, functools.partial(compute, spans=spans),
                              work_dir=work_dir, progress=progress)
        yield windows, values.float().reshape(len(windows), -1).cpu().numpy()
    kept.warn()
