"""Fine-tuning over several processes: who trains on which rows, and what every rank must see alike.

Under ``torchrun`` every rank reads the same data and draws the same order and strands from the
same seeded generator, so the batch of a step is the same everywhere; each rank then trains on a
contiguous share of it (:func:`batch_share`) and DistributedDataParallel averages the gradients.

* :func:`rank_rows` -- the contiguous share of ``n`` rows that a rank takes (as ``np.array_split``
  divides them: the first ``n % W`` ranks get one row more); concatenated in rank order the shares
  are the rows in their original order, which is how scores of a validation set are put back
  together (:func:`genomamba.train.evaluate.score_data`);
* :func:`batch_share` -- a rank's rows of one training batch and the weight of its loss;
* :func:`raise_on_every_rank` -- a check that only rank 0 can make (OUT is rank 0's), whose error
  every rank raises, so that no rank goes on to wait for one that has stopped;
* :func:`sigterm_raises` -- SIGTERM as an exception, so that a rank stopped by ``torchrun`` (which
  terminates the survivors when one rank fails) still removes what it wrote.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import NamedTuple

from genomamba.errors import GenomambaError
from genomamba.runtime.distributed import Distributed


class BatchShare(NamedTuple):
    """One rank's part of a training batch: ``rows`` (positions in the batch), ``count`` (how many
    of them count; 0 for a stand-in row) and ``weight`` (what its mean loss is multiplied by)."""

    rows: slice
    count: int
    weight: float


def rank_rows(n: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s contiguous share of ``n`` rows (``np.array_split``'s: the first ``n % W``
    ranks get ``n // W + 1`` rows, the others ``n // W``; empty when ``n < W`` and ``rank >= n``)."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def batch_share(batch_size: int, rank: int, world_size: int) -> BatchShare:
    """This rank's rows of a batch of ``batch_size`` and the weight of their mean loss.

    A rank's loss is the mean over its ``n_r`` rows times ``n_r * W / batch_size``: DDP averages
    the ranks' gradients (divides their sum by ``W``), so the step's gradient is that of the mean
    loss over the whole batch, as with one process. A rank left without rows (a last batch smaller
    than ``W``) runs the batch's first row with weight 0: every rank must take part in DDP's
    all-reduce, and that row belongs to rank 0's share, so a non-finite loss there would have
    spoilt the step anyway. One process: all rows, weight 1.
    """
    rows = rank_rows(batch_size, rank, world_size)
    count = rows.stop - rows.start
    if count == 0:
        return BatchShare(slice(0, 1), 0, 0.0)
    return BatchShare(rows, count, count * world_size / batch_size)


def raise_on_every_rank(world: Distributed, check: Callable[[], None]) -> None:
    """Run ``check`` on rank 0 only; the GenomambaError it raises is raised on every rank.

    For what only the writer of OUT can decide (whether OUT may be written): without this the
    other ranks would go on and wait in their first collective for a rank 0 that has stopped.
    Every rank must call it (a broadcast). Other exceptions leave rank 0 alone (the launcher
    stops the others when it exits).
    """
    error = None
    if world.is_main:
        try:
            check()
        except GenomambaError as exc:
            if not world.active:
                raise
            error = exc
    error = world.broadcast_object(error)
    if error is not None:
        raise error


@contextlib.contextmanager
def sigterm_raises(enabled: bool) -> Iterator[None]:
    """For the block, SIGTERM raises ``SystemExit(143)`` instead of ending the process at once.

    ``torchrun`` stops the other ranks with SIGTERM when one fails; ended at once, rank 0 would
    leave a half-filled OUT behind. Raised as an exception, the clean-up of
    :func:`genomamba.io.directories.fresh_directory` runs first. Only with ``enabled`` (several
    processes) and in the main thread (where Python runs signal handlers); the previous handler is
    restored afterwards.
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
