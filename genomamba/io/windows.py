"""Cutting records into fixed-size windows: the policy, and a streaming windower.

Coordinates are 0-based, half-open. With window ``W`` and stride ``S`` a record of length ``L``
gets the *regular* windows ``[k*S, k*S + W)`` for every ``k`` with ``k*S + W <= L``. What
happens to the bases after the last regular window is the *last-window policy*:

``keep`` (default)
    one shorter final window ``[s, L)``, where ``s`` is the next regular start. With the default
    stride (= window) the windows then tile the record exactly: every base is in exactly one
    window, nothing is invented or repeated, and coordinates stay trivial to map back. A record
    shorter than ``W`` becomes one short window.
``shift``
    a full-length final window moved back to end at the record end, ``[L - W, L)``: every window
    has length ``W`` (convenient for batching) at the cost of some bases appearing twice. A
    record shorter than ``W`` still becomes one short window ``[0, L)``.
``pad``
    ``[s, L)`` stored padded with ``PAD_ID`` to ``W`` tokens (the index keeps ``end = L`` and
    records the stored length).
``drop``
    no final window: the tail bases (and whole records shorter than ``W``) are left out.

No final window is made when the regular windows already reach ``L`` (it would add no base),
nor when the next start lies at or past ``L`` (possible with ``S > W``, which samples the
record with gaps).

:func:`window_spans` states the policy for a known length; :class:`Windower` applies the same
policy to a record that streams past in chunks, holding at most about ``W + chunk`` bases.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from genomamba.alphabet import PAD_ID

DEFAULT_WINDOW = 1 << 20
LAST_WINDOW_POLICIES = ("keep", "shift", "pad", "drop")


class Window(NamedTuple):
    """One window: ``ids[:end - start]`` are the bases ``[start, end)``; with the ``pad`` policy
    ``ids`` is longer, filled with ``PAD_ID``. ``softmask`` (bool, same shape) may be None.

    The arrays may be views into the windower's buffer: use them before feeding the next chunk.
    """

    start: int
    end: int
    ids: np.ndarray
    softmask: np.ndarray | None


def check_window_parameters(window: int, stride: int, last: str) -> None:
    """Raise ValueError for a non-positive window or stride or an unknown policy."""
    if window <= 0:
        raise ValueError(f"window must be positive, got {window}")
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")
    if last not in LAST_WINDOW_POLICIES:
        raise ValueError(f"last-window policy must be one of {', '.join(LAST_WINDOW_POLICIES)}, got {last!r}")


def _final_span(length: int, window: int, next_start: int, covered: int, last: str) -> tuple[int, int] | None:
    if last == "drop" or next_start >= length or covered >= length:
        return None
    if last == "shift":
        return max(0, length - window), length
    return next_start, length


def window_spans(length: int, window: int, stride: int, last: str = "keep") -> list[tuple[int, int]]:
    """All ``(start, end)`` windows of a record of ``length`` bases under the policy above."""
    check_window_parameters(window, stride, last)
    spans = [(s, s + window) for s in range(0, max(length - window + 1, 0), stride)]
    next_start = spans[-1][0] + stride if spans else 0
    covered = spans[-1][1] if spans else 0
    final = _final_span(length, window, next_start, covered, last)
    return spans + ([final] if final else [])


class Windower:
    """Streaming version of :func:`window_spans` for one record.

    Call :meth:`feed` with consecutive chunks (uint8 ids and optional bool soft-mask of the same
    length), then :meth:`finish`; both yield :class:`Window` objects in order.
    """

    def __init__(self, window: int, stride: int, last: str = "keep"):
        check_window_parameters(window, stride, last)
        self.window, self.stride, self.last = window, stride, last
        self._ids = np.empty(0, dtype=np.uint8)
        self._mask: np.ndarray | None = None
        self._buf_start = 0  # record position of self._ids[0]
        self._total = 0  # bases fed so far
        self._next = 0  # start of the next regular window
        self._covered = 0  # end of the last regular window

    def feed(self, ids: np.ndarray, softmask: np.ndarray | None = None) -> Iterator[Window]:
        """Add the next chunk of the record; yield the regular windows it completes."""
        chunk_start = self._total
        self._total += ids.size
        # Bases before _buf_start are not needed by any window (gaps when stride > window).
        skip = max(0, self._buf_start - chunk_start)
        if skip:
            ids = ids[skip:]
            softmask = softmask[skip:] if softmask is not None else None
        if self._ids.size:
            self._ids = np.concatenate([self._ids, ids])
            if softmask is not None:
                self._mask = np.concatenate([self._mask, softmask])
        else:
            self._ids, self._mask = ids, softmask
            self._buf_start = max(self._buf_start, chunk_start)
        while self._next + self.window <= self._total:
            yield self._slice(self._next, self._next + self.window)
            self._covered = self._next + self.window
            self._next += self.stride
        self._trim()

    def _slice(self, start: int, end: int) -> Window:
        a, b = start - self._buf_start, end - self._buf_start
        mask = self._mask[a:b] if self._mask is not None else None
        return Window(start, end, self._ids[a:b], mask)

    def _trim(self) -> None:
        keep_from = self._next
        if self.last == "shift":
            keep_from = min(keep_from, max(0, self._total - self.window))
        drop = min(keep_from, self._total) - self._buf_start
        if drop > 0:
            # A copy, so the (large) chunk that held these bases can be freed.
            self._ids = self._ids[drop:].copy()
            self._mask = self._mask[drop:].copy() if self._mask is not None else None
            self._buf_start += drop
        if keep_from > self._total:
            self._buf_start = keep_from

    def finish(self) -> Iterator[Window]:
        """Yield the final window of the record, if the policy makes one."""
        span = _final_span(self._total, self.window, self._next, self._covered, self.last)
        if span is None:
            return
        window = self._slice(*span)
        if self.last == "pad" and window.ids.size < self.window:
            pad = self.window - window.ids.size
            ids = np.concatenate([window.ids, np.full(pad, PAD_ID, dtype=np.uint8)])
            mask = (
                np.concatenate([window.softmask, np.zeros(pad, bool)])
                if window.softmask is not None
                else None
            )
            window = Window(window.start, window.end, ids, mask)
        yield window


class SegmentWindower:
    """Windows of chosen stretches of one streamed record (:mod:`genomamba.io.regions` segments).

    Each segment ``(start, end)`` (0-based half-open; ``end`` None runs to the record end) is cut
    by its own :class:`Windower`, so its windows start at the segment start and never reach past
    its end; yielded windows carry record coordinates. With the one segment ``(0, None)`` this is
    exactly a :class:`Windower` of the whole record.
    """

    def __init__(self, segments: list[tuple[int, int | None]], window: int, stride: int, last: str = "keep"):
        check_window_parameters(window, stride, last)
        self.segments, self.window, self.stride, self.last = segments, window, stride, last
        self._current = 0  # index of the first segment not finished yet
        self._windower: Windower | None = None  # the current segment's, once it has seen a base

    def feed(self, start: int, ids: np.ndarray, softmask: np.ndarray | None = None) -> Iterator[Window]:
        """Add the chunk of record bases ``[start, start + ids.size)``; yield the windows it completes."""
        stop = start + ids.size
        while self._current < len(self.segments):
            seg_start, seg_end = self.segments[self._current]
            if seg_start >= stop:
                return
            a, b = max(start, seg_start), stop if seg_end is None else min(stop, seg_end)
            if a < b:
                if self._windower is None:
                    self._windower = Windower(self.window, self.stride, self.last)
                piece = softmask[a - start : b - start] if softmask is not None else None
                yield from self._shift(self._windower.feed(ids[a - start : b - start], piece), seg_start)
            if seg_end is None or seg_end > stop:
                return
            yield from self._finish_current()

    def finish(self) -> Iterator[Window]:
        """At the end of the record: yield the final window of the segment it ended in."""
        if self._current < len(self.segments):
            yield from self._finish_current()

    def _finish_current(self) -> Iterator[Window]:
        if self._windower is not None:
            yield from self._shift(self._windower.finish(), self.segments[self._current][0])
        self._windower = None
        self._current += 1

    @staticmethod
    def _shift(windows: Iterator[Window], offset: int) -> Iterator[Window]:
        for w in windows:
            yield w if offset == 0 else Window(w.start + offset, w.end + offset, w.ids, w.softmask)
