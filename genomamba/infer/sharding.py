"""Inference on several processes (``torchrun``): which work is this process's, where its parts go,
and how rank 0 merges them into the one output a single process would write.

``torchrun --nproc-per-node N $(which genomamba) embed|predict|score-variants ...`` starts N copies of
the command. Every copy reads the inputs and cuts the same units of work in the same order (batches
of windows, whole records with ``--context record``, batches of variants): unit ``u`` is rank
``u % N``'s (:class:`Shard`). The batches are those of one process, so on the CPU every value is
the one a single process computes, bit for bit.

Outputs are not gathered into memory. Each rank writes the units it computed, a few thousand rows
per file, into one hidden folder beside the output (``.NAME.tmp-PID.XXXXXXXX``, PID being rank 0's;
every rank must see it: on a cluster, the output goes to a file system all nodes share). Once
every rank is done, rank 0 reads them back in unit order (:func:`interleaved`: unit ``u`` from
rank ``u % N``) and writes the real outputs through the same streaming writers as one process
(Parquet provenance, bigWig header, VCF records, atomic rename), then removes the folder. Memory
stays that of about one chunk: the merge holds one part file of each rank, each 1/N of a chunk.

Failures: the ranks exchange their state four times (once rank 0 made the parts folder, before
computing, after computing, after rank 0 wrote the outputs), every rank on every path, so no rank
waits for an exchange another skipped. An input error is found by every rank (they read the
same inputs); an error on one rank stops all of them after the exchange that follows it, and no
rank exits before rank 0 removed its temporaries (torchrun ends the other processes as soon as one
exits with an error). The failing rank raises its own error; the others raise
:class:`RankFailedError` with its message. The exchanges go through a gloo group of their own with
a long timeout, since a rank may wait hours for a slower one (NCCL's watchdog would end a wait of
ten minutes). One process (no ``torchrun``) takes none of these paths: its units are written as
they come.

Logs (and progress bars, at the API and command level) come from rank 0 only; ranks >= 1 keep
only errors. The first command of a process makes the process group and it lasts until the
process exits (:func:`genomamba.runtime.distributed.distributed`), so a script may run several
commands under one torchrun.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import logging
import os
import pickle
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from genomamba.errors import EXIT_FAILURE, GenomambaError
from genomamba.io.atomic import temporary_directory
from genomamba.io.directories import make_directories, remove_empty

T = TypeVar("T")

#: How long a rank waits in an exchange for the others: a whole genome's imbalance between ranks.
#: A rank that dies does not make the others wait this long: torchrun ends them.
EXCHANGE_TIMEOUT = datetime.timedelta(days=7)
_END = object()
#: The exchanges every rank makes, in this order, whatever happens: rank 0 made the parts folder
#: (or failed to), every rank is ready to compute, every rank computed its units, rank 0 wrote.
_STAGES = ("folder", "start", "computed", "written")


class RankFailedError(GenomambaError):
    """Another process of the same ``torchrun`` run failed; its message and exit code are carried."""

    def __init__(self, rank: int, message: str, exit_code: int = EXIT_FAILURE):
        super().__init__(f"stopped: rank {rank} failed: {message}")
        self.exit_code = exit_code


@dataclass(frozen=True)
class Shard:
    """Which units of work are this process's: unit ``u`` belongs to rank ``u % world_size``."""

    rank: int = 0
    world_size: int = 1

    def mine(self, unit: int) -> bool:
        return unit % self.world_size == self.rank

    def take(self, items: Iterable[T], skipped: Callable[[T], None] | None = None) -> Iterator[T]:
        """The items (units) of this rank, in order; ``skipped(item)`` is called with each of the
        others (rank 0 counts them in its progress bar: the bar shows its place in the shared stream)."""
        for unit, item in enumerate(items):
            if self.mine(unit):
                yield item
            elif skipped is not None:
                skipped(item)


def interleaved(streams: Sequence[Iterable[T]]) -> Iterator[T]:
    """The units of every rank in the order one process makes them: unit ``u`` from
    ``streams[u % len(streams)]`` (each stream a rank's units in its order), until the stream whose
    turn it is has none left.

    Raises:
        RuntimeError: a stream still holds units when another's turn found it empty (ranks that cut
            different units: a bug, never a partial output).
    """
    iterators = [iter(stream) for stream in streams]
    for turn in itertools.count():
        unit = next(iterators[turn % len(iterators)], _END)
        if unit is _END:
            late = [rank for rank, it in enumerate(iterators) if next(it, _END) is not _END]
            if late:
                raise RuntimeError(f"rank(s) {late} made more units than the round-robin order allows "
                                   f"(the {turn}th unit was missing): the ranks cut different work")
            return
        yield unit


class PartWriter:
    """A rank's units as pickle files ``rankRRRRR-KKKKKK.pkl`` of at least ``rows_per_part`` rows each
    (the last may hold fewer): private files of this run, read back by rank 0 of the same run."""

    def __init__(self, folder: Path, rank: int, rows_per_part: int):
        self.folder, self.rank, self.rows_per_part = folder, rank, rows_per_part
        self.units: list = []
        self.rows = 0
        self.files = 0

    def add(self, unit, rows: int) -> None:
        self.units.append(unit)
        self.rows += rows
        if self.rows >= self.rows_per_part:
            self.flush()

    def flush(self) -> None:
        if not self.units:
            return
        with open(self.folder / f"rank{self.rank:05d}-{self.files:06d}.pkl", "wb") as handle:
            pickle.dump(self.units, handle, protocol=pickle.HIGHEST_PROTOCOL)
        self.units, self.rows, self.files = [], 0, self.files + 1


def rank_units(folder: str | os.PathLike, rank: int) -> Iterator:
    """The units rank ``rank`` wrote into ``folder``, in its order; each file is removed once read
    (the disk holds the parts not yet merged and the output, not both in full)."""
    for path in sorted(Path(folder).glob(f"rank{rank:05d}-*.pkl")):
        with open(path, "rb") as handle:
            units = pickle.load(handle)
        path.unlink()
        yield from units


def _status(exc: BaseException | None) -> tuple[int, str] | None:
    """What the other ranks learn of a failure: (exit code, message)."""
    if exc is None:
        return None
    if isinstance(exc, GenomambaError):
        return exc.exit_code, str(exc)
    return EXIT_FAILURE, f"{type(exc).__name__}: {exc}"


class ShardedRun:
    """One inference run's share of the work: :attr:`shard`, the :attr:`device` to load the model on
    (the command's ``--device`` for one process, ``cuda:LOCAL_RANK`` or the CPU for several),
    :attr:`is_main` (rank 0: the only one that writes outputs, logs and checks the row count) and
    :meth:`gather`. Made by :func:`sharded_run`."""

    def __init__(self, shard: Shard, device, out: str | os.PathLike | None = None, group=None):
        self.shard, self.device, self._out, self._group = shard, device, out, group
        self._stage = 0  # exchanges made so far (_STAGES)
        self._folder: Path | None = None  # rank 0: the parts folder it made and removes
        self._shared: Path | None = None  # every rank: where it writes its parts
        self._created: list[Path] = []

    @property
    def is_main(self) -> bool:
        return self.shard.rank == 0

    def gather(self, units: Iterable[T], rows: Callable[[T], int], chunk_rows: int) -> Iterator[T]:
        """Every rank's units in the order of one process, on rank 0 (none on the others), once every
        rank computed its own (``units``: this rank's, in its order); ``rows(unit)``: its row count;
        ``chunk_rows``: the rows the caller writes at a time (the merge holds one part file of each
        rank, ``chunk_rows / N`` rows). One process: ``units`` as they are, lazily.

        Raises:
            RankFailedError: another rank failed; what computing this rank's units raises.
        """
        if self._group is None:
            return iter(units)
        return self._gathered(units, rows, max(1, chunk_rows // self.shard.world_size))

    def _open(self) -> None:
        """Rank 0 makes the parts folder beside the output (and the output's missing parent folders,
        removed again on failure once the folder is gone) and tells the others where it is."""
        failure: Exception | None = None
        if self.is_main:
            try:
                self._created = make_directories(Path(self._out).parent)
                self._folder = temporary_directory(self._out)
            except Exception as exc:  # told to the others in the exchange, then raised
                failure = exc
        statuses = self._exchange(failure, str(self._folder) if self._folder else None)
        self._raise(failure, statuses)
        self._shared = Path(statuses[0][1])

    def _gathered(self, units: Iterable[T], rows: Callable[[T], int], rows_per_part: int) -> Iterator[T]:
        if self._stage != 1:
            raise RuntimeError("a sharded run gathers its units once")
        # ranks that failed since the folder was made (loading the model, reading a BED file) say so
        # here, before anyone computes
        self._raise(None, self._exchange(None))
        failure: Exception | None = None
        folder = self._shared
        try:
            if not folder.is_dir():
                raise GenomambaError(f"{folder}: rank 0 made this folder for the parts of {self._out} but "
                                     f"rank {self.shard.rank} cannot see it: under torchrun on several "
                                     "machines the output must be on a file system they all share")
            parts = PartWriter(folder, self.shard.rank, rows_per_part)
            for unit in units:
                parts.add(unit, rows(unit))
            parts.flush()
        except Exception as exc:
            failure = exc
        self._raise(failure, self._exchange(failure))
        if self.is_main:
            yield from interleaved([rank_units(folder, rank) for rank in range(self.shard.world_size)])

    def _exchange(self, failure: BaseException | None, payload: object = None) -> list:
        """The next exchange of :data:`_STAGES`: every rank's (status, payload), in rank order."""
        import torch.distributed as dist

        gathered: list = [None] * self.shard.world_size
        dist.all_gather_object(gathered, (_status(failure), payload), group=self._group)
        self._stage += 1
        return gathered

    def _raise(self, failure: BaseException | None, statuses: list) -> None:
        """This rank's own failure, else the first other rank's as a RankFailedError."""
        if failure is not None:
            raise failure
        for rank, (status, _) in enumerate(statuses):
            if status is not None:
                raise RankFailedError(rank, status[1], status[0])

    def _finish(self, failure: BaseException | None) -> None:
        """Leave the run: the exchanges a failure skipped, rank 0's clean-up, and the last exchange,
        in which the others learn whether rank 0 wrote the outputs."""
        try:
            while self._stage < len(_STAGES) - 1:
                self._exchange(failure)
        finally:
            if self._folder is not None:
                shutil.rmtree(self._folder, ignore_errors=True)
                if failure is not None:
                    remove_empty(self._created)
        statuses = self._exchange(failure if self.is_main else None)
        if failure is None:
            self._raise(None, statuses)  # rank 0 failed to write: the others fail too


@contextlib.contextmanager
def _only_errors_logged(quiet: bool) -> Iterator[None]:
    """The ``genomamba`` loggers keep only errors for the block when ``quiet`` (ranks >= 1)."""
    logger = logging.getLogger("genomamba")
    level = logger.level
    if quiet:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def is_main_process() -> bool:
    """Whether this process is rank 0 of ``torchrun``'s world (or the only process): the one that
    locks the outputs, logs and draws progress.

    Raises:
        ConfigError: an inconsistent torchrun environment
            (:func:`genomamba.runtime.distributed.world_from_env`).
    """
    from genomamba.runtime.distributed import world_from_env

    return world_from_env().is_main


@contextlib.contextmanager
def sharded_run(device: str, out: str | os.PathLike) -> Iterator[ShardedRun]:
    """The :class:`ShardedRun` of this process for the block, whose main output is ``out`` (its parts
    folder goes beside it). One process: no process group, ``device`` as given. Several (torchrun's
    variables): the process group of :func:`genomamba.runtime.distributed.distributed` and a gloo
    group for the exchanges; the block's failure is told to every rank before it leaves.

    Raises:
        ConfigError, UnavailableError: see :func:`genomamba.runtime.distributed.distributed`.
        RankFailedError: another rank failed.
    """
    from genomamba.runtime.distributed import distributed, world_from_env

    if world_from_env().world_size == 1:
        yield ShardedRun(Shard(), device)
        return
    import torch.distributed as dist

    with distributed(device) as world, _only_errors_logged(not world.is_main):
        group = dist.new_group(backend="gloo", timeout=EXCHANGE_TIMEOUT)
        run = ShardedRun(Shard(world.rank, world.world_size), world.device, out, group)
        try:
            run._open()
            yield run
        except Exception as exc:
            run._finish(exc)
            raise
        except BaseException:  # interrupted: no exchange (the others are ending too), only clean-up
            if run._folder is not None:
                shutil.rmtree(run._folder, ignore_errors=True)
            raise
        run._finish(None)
