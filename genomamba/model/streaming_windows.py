"""Windows of a sequence read with the whole sequence as context, from one streamed pass.

A window run through the model alone sees its own bases only: a base near its edge knows nothing
of the bases just beyond. Here the whole sequence runs once, exactly and in bounded memory
(:func:`genomamba.model.streaming.streamed_hidden`), and each window ``[start, end)`` gets what the
model makes of the hidden states at its positions: pooled as ``model.embed`` pools a sequence
(:func:`streamed_window_embeddings`) or through the sequence head as ``model.predict`` does
(:func:`streamed_window_logits`). A window spanning the whole sequence gets the one-pass value of
the sequence (tests/model/test_streaming_windows.py).

Memory: the hidden states come a chunk at a time, and a window keeps only what its pooling needs
of the chunks it has seen (per strand: a running sum or maximum, or the one or two rows ``first``,
``last`` or ``center`` read); a head with learned attention pooling needs all of a window's rows,
so those are kept until the window is complete (at most a window's length x hidden size each).
Finished windows' values (a vector each) stay on the host until the sequence is done.

Reverse complement: with conjoining (by default for post-hoc, ``ph``, models) a second pass runs
over the reverse complement of the whole sequence. There the window ``[s, e)`` lies at ``[L - e,
L - s)`` and is pooled in that strand's own order (``first`` is its 5' end), exactly as the model
pools RC(window); the two values are averaged as the model averages them (half the sum of the
pooled embeddings, or of the logits).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence

import torch

from genomamba.model.config import FIXED_POOLINGS
from genomamba.model.streaming import (
    Progress,
    StrandPool,
    progress_share,
    rc_passes,
    streamed_hidden,
)

__all__ = ["streamed_window_embeddings", "streamed_window_logits"]

Spans = Sequence[tuple[int, int]]


def streamed_window_embeddings(
    model,
    input_ids: torch.Tensor,
    spans: Spans,
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
    """(batch, len(spans), d_model) on the host: for each ``(start, end)`` of ``spans`` the window's
    embedding pooled as ``model.embed(input_ids[:, start:end], pooling=pooling, conjoin=conjoin,
    layer=layer)`` pools it, from the hidden states of the whole of ``input_ids`` (batch, L)
    (unpadded token ids). ``chunk``, ``device``, ``residual``, ``store_dir``, ``progress``: as
    :func:`genomamba.model.streaming.streamed_hidden` (progress adds up to L).

    Raises:
        ValueError: an unknown pooling, a span that is empty or outside the sequence, no span, a
            bad ``layer`` or chunk size.
    """
    if pooling not in FIXED_POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(FIXED_POOLINGS)}, got {pooling!r}")
    strands = model.config.n_strands
    return _read_windows(model, input_ids, spans, lambda n: StrandPool(pooling, n, strands), lambda v: v,
                         conjoin=conjoin, layer=layer, chunk=chunk, device=device, residual=residual,
                         store_dir=store_dir, progress=progress)


def streamed_window_logits(
    model,
    input_ids: torch.Tensor,
    spans: Spans,
    *,
    chunk: int,
    device: torch.device | str,
    conjoin: bool | None = None,
    residual: str = "memory",
    store_dir: str | os.PathLike | None = None,
    progress: Progress = None,
) -> torch.Tensor:
    """(batch, len(spans), num_labels) on the host: for each ``(start, end)`` of ``spans`` the
    sequence head's logits as ``model.predict(input_ids[:, start:end], conjoin=conjoin).logits``
    gives them (the head's pooling, fixed or learned, and classifier), from the hidden states of
    the whole of ``input_ids``. Other parameters: as :func:`streamed_window_embeddings`.

    Raises:
        ValueError: a model without a sequence head; spans, chunk size as
            :func:`streamed_window_embeddings`.
    """
    if model.config.head.task != "sequence":
        raise ValueError(f"window logits need a sequence head, not {model.config.head.task!r}")
    head, strands = model.head, model.config.n_strands
    if head.pooling not in FIXED_POOLINGS:  # attention, binned: a window's rows, then the head itself
        reader = _Rows

        def finish(rows: torch.Tensor) -> torch.Tensor:
            return head(rows, None, torch.full((rows.shape[0],), rows.shape[1], device=rows.device))
    else:  # a fixed pooling, accumulated chunk by chunk, then the head's classifier
        reader, finish = (lambda n: StrandPool(head.pooling, n, strands)), head.classify
    return _read_windows(model, input_ids, spans, reader, finish, conjoin=conjoin, layer=None, chunk=chunk,
                         device=device, residual=residual, store_dir=store_dir, progress=progress)


def _read_windows(model, input_ids: torch.Tensor, spans: Spans, reader: Callable, finish: Callable, *,
                  conjoin: bool | None, layer: int | None, chunk: int, device, residual: str, store_dir,
                  progress: Progress) -> torch.Tensor:
    """Every window's ``finish(reader(length).result())`` from each pass (the sequence, and with
    conjoining its reverse complement), averaged over the passes."""
    length = input_ids.shape[1]
    spans = _checked(spans, length)
    passes = rc_passes(model, input_ids, conjoin)
    values = []
    for ids, is_rc in passes:
        # on the reverse complement the window [s, e) is [L - e, L - s), read in that strand's order
        windows = _Windows([(length - e, length - s) for s, e in spans] if is_rc else spans, reader, finish)
        for start, end, hidden in streamed_hidden(model, ids, chunk=chunk, device=device, layer=layer,
                                                  residual=residual, store_dir=store_dir,
                                                  progress=progress_share(progress, passes)):
            with torch.inference_mode():
                windows.add(start, end, hidden)
        values.append(windows.result())
    return values[0] if len(values) == 1 else 0.5 * (values[0] + values[1])


def _checked(spans: Spans, length: int) -> list[tuple[int, int]]:
    spans = [(int(s), int(e)) for s, e in spans]
    if not spans:
        raise ValueError("no window to read")
    for s, e in spans:
        if not 0 <= s < e <= length:
            raise ValueError(f"window [{s}, {e}) is empty or outside the sequence of {length} positions")
    return spans


class _Windows:
    """The windows of one pass: as the chunks of hidden states come, each open window reads the
    part of the chunk it covers, and is finished in the chunk where it ends. Windows open in order
    of their start, whatever the order of ``spans`` (a shifted last window starts before the one
    ahead of it)."""

    def __init__(self, spans: list[tuple[int, int]], reader: Callable, finish: Callable):
        self.spans, self.reader, self.finish = spans, reader, finish
        self.waiting = deque(sorted(range(len(spans)), key=lambda i: spans[i][0]))
        self.open: dict[int, object] = {}
        self.values: list[torch.Tensor | None] = [None] * len(spans)

    def add(self, start: int, end: int, hidden: torch.Tensor) -> None:
        """The chunk of positions ``[start, end)``, (batch, end - start, hidden_size), chunks in order."""
        while self.waiting and self.spans[self.waiting[0]][0] < end:
            i = self.waiting.popleft()
            self.open[i] = self.reader(self.spans[i][1] - self.spans[i][0])
        for i in list(self.open):  # every open window overlaps this chunk
            s, e = self.spans[i]
            a, b = max(s, start), min(e, end)
            self.open[i].add(a - s, b - s, hidden[:, a - start : b - start])
            if e <= end:
                self.values[i] = self.finish(self.open.pop(i).result()).cpu()

    def result(self) -> torch.Tensor:
        """(batch, windows, k) once every chunk has come."""
        return torch.stack(self.values, 1)


class _Rows:
    """All the hidden states of one window, (batch, length, hidden_size), gathered chunk by chunk."""

    def __init__(self, length: int):
        self.length, self.parts = length, []

    def add(self, start: int, end: int, hidden: torch.Tensor) -> None:
        # a part of a window is copied out of its chunk, so that the chunk itself can be freed
        self.parts.append(hidden if end - start == self.length else hidden.clone())

    def result(self) -> torch.Tensor:
        return self.parts[0] if len(self.parts) == 1 else torch.cat(self.parts, 1)
