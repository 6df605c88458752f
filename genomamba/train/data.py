"""Crop sampling over token-shard directories for pretraining (numpy only; no torch here).

:class:`CropSampler` draws crops of a given length from the windows of one or more
``genomamba tokenize`` directories:

* a window is drawn with probability proportional to its real length (long and short windows are
  covered evenly per base), then a uniformly random crop start inside it; windows shorter than the
  crop give the whole window, right-padded with ``[PAD]``;
* windows whose ``n_fraction`` exceeds ``max_n_fraction`` are never drawn;
* with ``rc_augment`` each crop is the reverse complement with probability 1/2 (the minus strand
  is made through :func:`genomamba.alphabet.reverse_complement`, so padding stays at the end);
* everything random comes from a seeded ``numpy.random.Generator`` (PCG64): the sampler's own
  (:attr:`CropSampler.rng`, whose state and crop count are :meth:`~CropSampler.state_dict`), or one
  passed to :meth:`~CropSampler.sample`.

The trainer passes one generator per micro-batch, :func:`micro_batch_rng` ``(seed, index)``, where
``index`` counts micro-batches from the start of the run, and each of ``W`` processes takes the
micro-batches ``rank, rank + W, ...`` of a step (:func:`rank_micro_batches`). Why keyed streams
rather than one stream that every process advances: a process never draws (or reads from disk)
the crops of another's micro-batches, so data preparation shrinks with ``W`` instead of eating
into the scaling; the global batch of a step depends only on ``(seed, index)``, so ``W``
processes train on exactly the crops and masks of one process (the world size can even change on
resume); and the data position is one integer that every rank shares, so rank 0's checkpoint is
enough to resume all of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genomamba.alphabet import PAD_ID, reverse_complement
from genomamba.errors import InputDataError
from genomamba.io.shards import MANIFEST, TokenShards


def open_shards(directories: Sequence[str | Path], *, verify_checksums: bool = False) -> list[TokenShards]:
    """Open token-shard directories and check them: layout (every shard's length, dtype and size
    against the manifest) and every token id (a base or padding: one pass over the memory-mapped
    data); with ``verify_checksums`` also each shard's sha256 against the manifest.

    Raises:
        InputDataError: a directory is missing, is not a token-shard directory, or fails a check
            (the message names the file).
    """
    opened = []
    for directory in directories:
        path = Path(directory)
        if not path.is_dir():
            raise InputDataError(
                f"{path}: no such token-shard directory (make one with `genomamba tokenize`)"
            )
        if not (path / MANIFEST).is_file():
            raise InputDataError(
                f"{path}: not a token-shard directory (no {MANIFEST}); run `genomamba tokenize`"
            )
        try:
            store = TokenShards(path)
        except (ValueError, OSError) as exc:
            raise InputDataError(f"{path}: unreadable token shards: {exc}") from exc
        if verify_checksums:
            store.verify_checksums()
        store.check_tokens()
        opened.append(store)
    return opened


def manifests_sha256(directories: Sequence[str | Path]) -> str:
    """sha256 identifying the training data: of one ``manifest.json``, or of the sorted hashes of several."""
    digests = [hashlib.sha256((Path(d) / MANIFEST).read_bytes()).hexdigest() for d in directories]
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()


class CropSampler:
    """Seeded, resumable crops from token shards.

    Args:
        shards: opened directories (see :func:`open_shards`).
        seed: seed of the sampler's own generator :attr:`rng` (used when :meth:`sample` gets none).
        max_n_fraction: windows with a larger fraction of N are skipped.
        rc_augment: reverse-complement each crop with probability 1/2.

    Raises:
        InputDataError: no window is left after the N filter.
    """

    def __init__(
        self,
        shards: Sequence[TokenShards],
        seed: int = 0,
        max_n_fraction: float = 0.5,
        rc_augment: bool = True,
    ):
        self.shards = list(shards)
        self.rc_augment = rc_augment
        owners, windows, lengths = [], [], []
        for k, store in enumerate(self.shards):
            index = store.index
            real = index.column("end").to_numpy() - index.column("start").to_numpy()
            n_fraction = index.column("n_fraction").to_numpy()
            keep = np.flatnonzero((n_fraction <= max_n_fraction) & (real > 0))
            owners.append(np.full(keep.size, k, dtype=np.int64))
            windows.append(keep.astype(np.int64))
            lengths.append(real[keep].astype(np.int64))
        self._owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
        self._window = np.concatenate(windows) if windows else np.zeros(0, np.int64)
        self._real = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
        if self._window.size == 0:
            names = ", ".join(str(s.directory) for s in self.shards)
            raise InputDataError(f"{names}: no window with n_fraction <= {max_n_fraction} to train on")
        self._cumulative = np.cumsum(self._real)
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.crops_drawn = 0

    @property
    def num_windows(self) -> int:
        """Windows that can be drawn (after the N filter)."""
        return int(self._window.size)

    @property
    def num_bases(self) -> int:
        """Real bases in the drawable windows."""
        return int(self._cumulative[-1])

    @property
    def longest_window(self) -> int:
        """Real bases of the longest drawable window: no crop is longer without padding."""
        return int(self._real.max())

    def real_fraction(self, length: int) -> float:
        """The expected share of real bases (not padding) in crops of ``length``: windows are
        drawn in proportion to their length, and one shorter than ``length`` fills only part."""
        return float((self._real * np.minimum(self._real, length)).sum() / (self.num_bases * length))

    def sample(self, batch_size: int, length: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """``batch_size`` crops as uint8 ids, shape ``(batch_size, length)``, right-padded with PAD.

        ``rng``: the generator to draw from (default: the sampler's own :attr:`rng`).
        """
        rng = self.rng if rng is None else rng
        out = np.full((batch_size, length), PAD_ID, dtype=np.uint8)
        picks = np.searchsorted(self._cumulative, rng.integers(0, self.num_bases, size=batch_size), "right")
        starts_u = rng.random(batch_size)
        flips = rng.random(batch_size) < 0.5
        for row, j in enumerate(picks):
            store = self.shards[int(self._owner[j])]
            real = int(self._real[j])
            offset = int(starts_u[row] * (real - length + 1)) if real > length else 0
            ids = store.get(int(self._window[j]))[offset : offset + min(length, real)]
            if self.rc_augment and flips[row]:
                ids = reverse_complement(ids)
            out[row, : ids.size] = ids
        self.crops_drawn += batch_size
        return out

    def state_dict(self) -> dict:
        """The position: generator state and crops drawn (plain Python objects, JSON-friendly)."""
        return {"bit_generator": self.rng.bit_generator.state, "crops_drawn": self.crops_drawn}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["bit_generator"]
        self.crops_drawn = int(state["crops_drawn"])


def micro_batch_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of micro-batch ``index`` (0-based, counted from the start of the run) of a
    run seeded ``seed``: crops, strands and masks of that micro-batch are drawn from it alone."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(index,))))


def rank_micro_batches(first: int, sizes: Sequence[int], rank: int, world_size: int) -> list[tuple[int, int]]:
    """``(index, crops)`` of the micro-batches process ``rank`` of ``world_size`` trains on in a step.

    ``first`` is the run-wide index of the step's first micro-batch and ``sizes`` the crops of each
    (:meth:`PretrainConfig.micro_batch_sizes`); the process takes micro-batches ``rank, rank + W,
    ...``. Together the processes cover the step's micro-batches exactly once.
    """
    return [(first + k, int(sizes[k])) for k in range(rank, len(sizes), world_size)]
