"""Exact inference over sequences of any length: the model layer by layer, a chunk at a time.

A one-pass forward holds a layer's activations for the whole sequence on the device, so its
memory grows with the length (a 70 Mb chromosome asks for over 100 GiB). Here only the residual
stream of the whole sequence is kept between layers (:class:`ResidualStore`: on the device when it
fits, else in host memory, or in a numpy memmap on disk), and each layer is applied to it chunk
by chunk on the device, so device memory is that of one layer over one chunk plus, at most, the
stream itself.

The result is the one-pass result, not an approximation (tests/model/test_streaming.py):

* convolutions: each chunk is read with ``d_conv - 1`` rows of halo on both sides (the layer's
  input there), so the causal and anti-causal convs give at the chunk's own rows exactly what
  they give in one pass;
* the left-to-right scan carries its final state into the next chunk's ``initial_state``;
* the right-to-left scan needs the state coming from the right, so a bidirectional layer first
  sweeps right to left computing only that scan, keeping its state at every chunk boundary
  ((batch, channels, d_state) each), then sweeps left to right computing each chunk's output with
  the forward state carried and the reverse scan started from the stored boundary state;
* a chunk's new residual rows are written back only once no later chunk reads them as halo.

Every step is the mixers' own code (``forward_chunk``/``right_state`` of
:mod:`genomamba.model.mixer` and :mod:`genomamba.model.bimamba`), so the one-pass forward and this
pass cannot drift apart. Both RC strategies work: a parameter-sharing model's two strands are
channel blocks of each chunk as in one pass; a post-hoc (``ph``) model is run over the sequence
and over its reverse complement, and the two are averaged, mapped back to the sequence's positions.

The final norm and the heads work on chunks: per-base embeddings and per-base logits
(:func:`streamed_per_base`, written into any array, e.g. a memmap) and pooled embeddings
(:func:`streamed_embedding`, accumulated chunk by chunk); windows of a sequence read with the whole
sequence as context are :mod:`genomamba.model.streaming_windows`. Sequences are unpadded rows of
token ids (batch, L) (one record, usually); padding is what one-pass batches need, not this.
"""

from __future__ import annotations

import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterator

import numpy as np
import torch

from genomamba.model.heads import merge_strands
from genomamba.model.rc import permute_vocab, strands

__all__ = [
    "ResidualStore",
    "chunk_spans",
    "stream_backbone",
    "streamed_hidden",
    "streamed_embedding",
    "streamed_per_base",
]

Progress = Callable[[float], None] | None


def chunk_spans(length: int, chunk: int) -> list[tuple[int, int]]:
    """``[start, end)`` of consecutive chunks of ``chunk`` positions covering ``length`` (the last
    one shorter when ``chunk`` does not divide ``length``).

    Raises:
        ValueError: a chunk size below 1.
    """
    if chunk < 1:
        raise ValueError(f"chunk size must be at least 1, got {chunk}")
    return [(start, min(start + chunk, length)) for start in range(0, length, chunk)]


_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16,
                 torch.bfloat16: np.int16}  # bf16 has no numpy dtype: stored as its bits


#: Where a residual stream may live (:class:`ResidualStore`).
RESIDUAL_PLACES = ("memory", "pinned", "device", "disk")


class ResidualStore:
    """The residual stream of whole sequences, ``(batch, L, width)``, between layers.

    ``where``: ``memory``, a CPU tensor; ``pinned``, a page-locked one (faster copies to and from
    a GPU; ordinary memory if the host refuses to lock it); ``device``, a tensor on ``device`` (no
    copies at all, for streams that fit beside the activations); ``disk``, a numpy memmap in a
    file created in ``directory`` (removed by :meth:`close`), for streams larger than the host's
    memory.
    """

    def __init__(self, batch: int, length: int, width: int, dtype: torch.dtype, *, where: str = "memory",
                 directory: str | os.PathLike | None = None, device: torch.device | str = "cpu"):
        if where not in RESIDUAL_PLACES:
            raise ValueError(f"where must be one of {RESIDUAL_PLACES}, got {where!r}")
        self.shape, self.dtype, self.where = (batch, length, width), dtype, where
        self.path = None
        device = torch.device(device)
        if where == "device":
            self._tensor = torch.empty(self.shape, dtype=dtype, device=device)
        elif where in ("memory", "pinned"):
            self._tensor = None
            if where == "pinned" and torch.cuda.is_available():
                try:
                    self._tensor = torch.empty(self.shape, dtype=dtype, pin_memory=True)
                except RuntimeError:  # page-locking refused (limits): ordinary memory copies slower
                    pass
            if self._tensor is None:
                self._tensor = torch.empty(self.shape, dtype=dtype)
        else:
            handle, self.path = tempfile.mkstemp(prefix="residual-", suffix=".bin",
                                                 dir=directory or tempfile.gettempdir())
            os.close(handle)
            self._array = np.memmap(self.path, dtype=_NUMPY_DTYPES[dtype], mode="w+", shape=self.shape)
            self._tensor = torch.from_numpy(self._array)
            if dtype == torch.bfloat16:
                self._tensor = self._tensor.view(torch.bfloat16)

    @property
    def nbytes(self) -> int:
        return self._tensor.numel() * self._tensor.element_size()

    def read(self, start: int, end: int) -> torch.Tensor:
        """Rows ``[start, end)`` (batch, end - start, width): a view of the store."""
        return self._tensor[:, start:end]

    def write(self, start: int, values: torch.Tensor) -> None:
        """Store ``values`` (batch, n, width), on any device, at rows ``[start, start + n)``."""
        self._tensor[:, start : start + values.shape[1]].copy_(values)

    def close(self) -> None:
        """Drop the stream; a memmap's file is removed."""
        self._tensor = None
        if self.path is not None:
            self._array._mmap.close()
            self._array = None
            os.unlink(self.path)
            self.path = None


def stream_backbone(
    backbone,
    input_ids: torch.Tensor,
    *,
    chunk: int,
    device: torch.device | str,
    depth: int | None = None,
    residual: str = "memory",
    store_dir: str | os.PathLike | None = None,
    progress: Progress = None,
) -> ResidualStore:
    """The residual stream after the first ``depth`` layers (None: all), before the final norm.

    ``input_ids`` (batch, L) token ids without padding, on any device; the layers run on
    ``device`` a chunk of ``chunk`` positions at a time; the stream waits between layers where
    ``residual`` says (:class:`ResidualStore`; ``disk``: a file in ``store_dir``). ``progress``
    receives the positions of every chunk of every sweep, scaled so that a whole run adds up to L.
    The caller closes the store.

    Raises:
        ValueError: a bad chunk size.
        torch.OutOfMemoryError, RuntimeError, MemoryError: what the allocators raise.
    """
    batch, length = input_ids.shape
    spans = chunk_spans(length, chunk)
    sweeps = _sweeps(backbone, depth)
    tick = (lambda n: progress(n / sweeps)) if progress is not None else (lambda n: None)
    store = None
    try:
        with torch.inference_mode():
            for start, end in spans:
                h = backbone.initial_residual(input_ids[:, start:end].to(device))
                if store is None:
                    store = ResidualStore(batch, length, h.shape[-1], h.dtype, where=residual,
                                          directory=store_dir, device=device)
                store.write(start, h)
                tick(end - start)
            halo = backbone.config.mixer.d_conv - 1
            for layer in backbone.layers[:depth]:
                _stream_layer(layer, store, spans, halo, device, tick)
    except BaseException:
        if store is not None:
            store.close()
        raise
    return store


def _sweeps(backbone, depth: int | None) -> int:
    """Passes over the sequence: embedding, one per causal layer, two per bidirectional layer (the
    right-to-left states, then the outputs), the final norm."""
    return 2 + sum(2 if hasattr(layer.mixer, "right_state") else 1 for layer in backbone.layers[:depth])


def _stream_layer(layer, store: ResidualStore, spans, halo: int, device, tick) -> None:
    """``h <- h + mixer(norm(h))`` over the whole stream, one chunk at a time (module docstring)."""
    length = store.shape[1]

    def read(i: int) -> tuple[torch.Tensor, slice]:
        start, end = spans[i]
        first, last = max(0, start - halo), min(length, end + halo)
        # from page-locked memory the copy runs while the CPU queues the chunk's work; a write
        # back (a synchronous copy) waits for everything queued before it
        return store.read(first, last).to(device, non_blocking=True), slice(start - first, end - first)

    mixer = layer.mixer
    # bidirectional: the right-to-left scan's state entering each chunk from its right, kept on
    # the host (one per chunk boundary, (batch, channels, d_state) each)
    right_states: list[torch.Tensor | None] = [None] * len(spans)
    if hasattr(mixer, "right_state"):
        state = None
        for i in reversed(range(len(spans))):
            right_states[i] = None if state is None else state.cpu()
            h, rows = read(i)
            state = mixer.right_state(layer.mixer_input(h), rows, state)
            tick(rows.stop - rows.start)
    state = None
    pending: deque[tuple[int, torch.Tensor]] = deque()
    for i in range(len(spans)):
        h, rows = read(i)
        right = right_states[i].to(device) if right_states[i] is not None else None
        out, state = mixer.forward_chunk(layer.mixer_input(h), rows, state, right)
        pending.append((spans[i][0], layer.add(h[:, rows], out)))
        # a chunk's new rows go back once no later chunk reads them as its left halo
        next_read = spans[i + 1][0] - halo if i + 1 < len(spans) else length
        while pending and pending[0][0] + pending[0][1].shape[1] <= next_read:
            store.write(*pending.popleft())
        tick(rows.stop - rows.start)


def streamed_hidden(
    model,
    input_ids: torch.Tensor,
    *,
    chunk: int,
    device: torch.device | str,
    layer: int | None = None,
    residual: str = "memory",
    store_dir: str | os.PathLike | None = None,
    progress: Progress = None,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """``(start, end, hidden)`` for consecutive chunks: the backbone's output (after ``layer``
    layers, None: all; through the final norm) at positions ``[start, end)``, (batch, n,
    hidden_size) on ``device``, as ``model.backbone(input_ids, depth=layer)[:, start:end]``.
    ``residual``, ``store_dir``: where the residual stream waits (:func:`stream_backbone`).

    Raises:
        ValueError: ``layer`` outside 1..n_layer; a bad chunk size.
    """
    _check_layer(model, layer)
    backbone = model.backbone
    store = stream_backbone(backbone, input_ids, chunk=chunk, device=device, depth=layer,
                            residual=residual, store_dir=store_dir, progress=progress)
    try:
        sweeps = _sweeps(backbone, layer)
        for start, end in chunk_spans(input_ids.shape[1], chunk):
            with torch.inference_mode():
                hidden = backbone.final_norm(store.read(start, end).to(device, non_blocking=True))
            yield start, end, hidden
            if progress is not None:
                progress((end - start) / sweeps)
    finally:
        store.close()


def _check_layer(model, layer: int | None) -> None:
    if layer is not None and not 1 <= layer <= model.config.n_layer:
        raise ValueError(f"layer must be 1..{model.config.n_layer} (the model's layers), got {layer}")


def rc_passes(model, input_ids: torch.Tensor, conjoin: bool | None) -> list[tuple[torch.Tensor, bool]]:
    """``(ids, is_rc)`` of each pass: the sequence, and with conjoining its reverse complement."""
    if not model._conjoin(conjoin):
        return [(input_ids, False)]
    table = model.backbone.complement.to(input_ids.device)
    return [(input_ids, False), (table[input_ids.flip(1).long()], True)]


def streamed_embedding(
    model,
    input_ids: torch.Tensor,
    *,
    chunk: int,
    device: torch.device | str,
    pooling: str = "mean",
    conjoin: bool | None = None,
    layer: int | None = None,
    residual: str = "memory",
    store_dir: str | os.PathLike | None = None,
    progress: Progress = None,
) -> torch.Tensor:
    """``model.embed(input_ids, pooling=pooling, conjoin=conjoin, layer=layer)`` (batch, d_model),
    streamed: the pooling is accumulated chunk by chunk (fixed poolings: mean, max, first, last,
    center). Raises ValueError for an unknown pooling or a bad ``layer`` or chunk size."""
    if pooling not in _POOL_POSITIONS and pooling not in ("mean", "max"):
        raise ValueError(f"unknown pooling {pooling!r}")
    passes = rc_passes(model, input_ids, conjoin)
    pooled = []
    for ids, _ in passes:
        acc = StrandPool(pooling, ids.shape[1], model.config.n_strands)
        for start, end, hidden in streamed_hidden(model, ids, chunk=chunk, device=device, layer=layer,
                                                  residual=residual, store_dir=store_dir,
                                                  progress=progress_share(progress, passes)):
            acc.add(start, end, hidden)
        pooled.append(acc.result())
    return pooled[0] if len(pooled) == 1 else 0.5 * (pooled[0] + pooled[1])


def streamed_per_base(
    model,
    input_ids: torch.Tensor,
    out: np.ndarray,
    *,
    chunk: int,
    device: torch.device | str,
    what: str = "embedding",
    conjoin: bool | None = None,
    layer: int | None = None,
    residual: str = "memory",
    store_dir: str | os.PathLike | None = None,
    progress: Progress = None,
) -> np.ndarray:
    """Fill ``out`` (batch, L, k), any array numpy can write to (a memmap), chunk by chunk:

    * ``what="embedding"``: ``model.embed(input_ids, pooling=None, conjoin=conjoin, layer=layer)``,
      k = d_model;
    * ``what="logits"``: the head's per-position logits (a masked-LM or token head), as
      ``model(input_ids, conjoin=conjoin).logits``, k = vocab size or labels (``layer`` must be None).

    With conjoining, the reverse complement's values are averaged into ``out`` as they come (read
    back from it), mapped to the sequence's positions (and, for masked-LM logits, to the
    complementary bases). Returns ``out``.

    Raises:
        ValueError: an unknown ``what``, a model without a per-position head for logits, an ``out``
            of the wrong shape, a bad ``layer`` or chunk size.
    """
    batch, length = input_ids.shape
    task = model.config.head.task
    if what == "embedding":
        width = model.config.d_model
    elif what == "logits":
        if task not in ("mlm", "token") or layer is not None:
            raise ValueError(f"per-base logits need the last layer of a masked-LM or token head, not "
                             f"{task!r}")
        width = model.config.vocab_size if task == "mlm" else model.config.head.num_labels
    else:
        raise ValueError(f"what must be 'embedding' or 'logits', got {what!r}")
    if tuple(out.shape) != (batch, length, width):
        raise ValueError(f"out must have shape {(batch, length, width)}, got {tuple(out.shape)}")
    passes = rc_passes(model, input_ids, conjoin)
    for ids, is_rc in passes:
        for start, end, hidden in streamed_hidden(model, ids, chunk=chunk, device=device, layer=layer,
                                                  residual=residual, store_dir=store_dir,
                                                  progress=progress_share(progress, passes)):
            with torch.inference_mode():
                if what == "embedding":
                    values = merge_strands(hidden, model.config.n_strands)
                else:
                    values = model._logits(hidden, None, None)
                    if is_rc and task == "mlm":  # the RC strand predicts the complementary base
                        values = permute_vocab(values, model.backbone.complement)
                values = values.float().cpu()
            if not is_rc:
                out[:, start:end] = values.numpy()
            else:  # RC positions [start, end) are the sequence's [L - end, L - start), reversed
                where = slice(length - end, length - start)
                mine = torch.from_numpy(np.asarray(out[:, where], dtype=np.float32))
                out[:, where] = (0.5 * (mine + values.flip(1))).numpy()
    return out


def progress_share(progress: Progress, passes: list) -> Progress:
    """``progress`` scaled so that all passes together add up to the sequence's length."""
    if progress is None or len(passes) == 1:
        return progress
    return lambda n: progress(n / len(passes))


#: Positions a fixed pooling reads, for a sequence of length n (genomamba.model.heads.pool).
_POOL_POSITIONS = {
    "first": lambda n: [0],
    "last": lambda n: [n - 1],
    "center": lambda n: [(n - 1) // 2, n // 2],
}
_MIRRORED = {"first": "last", "last": "first"}


class StrandPool:
    """A pooling of each strand over positions, accumulated chunk by chunk, then averaged over the
    strands as :func:`genomamba.model.heads.pool_strands` does (``first``/``last`` swap on the RC
    strand, whose 5' end is our last position). Means are summed in fp64."""

    def __init__(self, how: str, length: int, n_strands: int):
        self.how, self.length, self.n_strands = how, length, n_strands
        self.dtype = None
        # per strand: the running sum or max, or the rows read so far {position: (batch, d)}
        self.parts: list = [None if how in ("mean", "max") else {} for _ in range(n_strands)]

    def add(self, start: int, end: int, hidden: torch.Tensor) -> None:
        self.dtype = hidden.dtype
        hs = strands(hidden, self.n_strands)  # (batch, n, strands, d)
        for s in range(self.n_strands):
            how = _MIRRORED.get(self.how, self.how) if s == 1 else self.how
            h, part = hs[:, :, s], self.parts[s]
            if how == "mean":
                self.parts[s] = h.double().sum(1) + (0 if part is None else part)
            elif how == "max":
                self.parts[s] = h.amax(1) if part is None else torch.maximum(part, h.amax(1))
            else:
                wanted = _POOL_POSITIONS[how](self.length)
                # a copy of the row, not a view that would keep the whole chunk alive
                part.update({p: h[:, p - start].clone() for p in wanted if start <= p < end})

    def result(self) -> torch.Tensor:
        """(batch, d) in the hidden states' dtype."""
        pooled = []
        for part in self.parts:
            if self.how == "mean":
                pooled.append((part / self.length).to(self.dtype))
            elif self.how == "max":
                pooled.append(part)
            else:
                rows = list(part.values())
                pooled.append(rows[0] if len(rows) == 1 else 0.5 * (rows[0] + rows[1]))
        return pooled[0] if self.n_strands == 1 else 0.5 * (pooled[0] + pooled[1])
