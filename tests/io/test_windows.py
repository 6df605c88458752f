"""Window policy (genomamba.io.windows): the spans, and the streaming windower that must agree."""

from __future__ import annotations

import numpy as np
import pytest

from genomamba.alphabet import PAD_ID
from genomamba.io.windows import LAST_WINDOW_POLICIES, Windower, window_spans


def test_spans_of_each_policy():
    # length 25, window 10, stride 10: two full windows, then 5 bases left over
    assert window_spans(25, 10, 10, "keep") == [(0, 10), (10, 20), (20, 25)]
    assert window_spans(25, 10, 10, "shift") == [(0, 10), (10, 20), (15, 25)]
    assert window_spans(25, 10, 10, "pad") == [(0, 10), (10, 20), (20, 25)]
    assert window_spans(25, 10, 10, "drop") == [(0, 10), (10, 20)]


def test_exact_tiling_adds_no_final_window():
    for policy in LAST_WINDOW_POLICIES:
        assert window_spans(30, 10, 10, policy) == [(0, 10), (10, 20), (20, 30)]
    # overlapping windows that already reach the end: nothing new to add
    assert window_spans(20, 10, 5, "keep") == [(0, 10), (5, 15), (10, 20)]


def test_short_record():
    assert window_spans(7, 10, 10, "keep") == [(0, 7)]
    assert window_spans(7, 10, 10, "shift") == [(0, 7)]  # cannot shift before the start
    assert window_spans(7, 10, 10, "drop") == []
    assert window_spans(0, 10, 10, "keep") == []


def test_stride_larger_than_window_samples_with_gaps():
    assert window_spans(35, 10, 15, "keep") == [(0, 10), (15, 25), (30, 35)]
    assert window_spans(31, 10, 15, "keep") == [(0, 10), (15, 25), (30, 31)]
    assert window_spans(30, 10, 15, "keep") == [(0, 10), (15, 25)]  # next start is the end


def test_every_base_covered_once_with_default_stride():
    for length in (1, 9, 10, 11, 99, 100, 101):
        spans = window_spans(length, 10, 10, "keep")
        covered = np.concatenate([np.arange(s, e) for s, e in spans])
        assert np.array_equal(covered, np.arange(length))


@pytest.mark.parametrize(
    "bad", [dict(window=0, stride=1), dict(window=1, stride=0), dict(window=1, stride=1, last="x")]
)
def test_bad_parameters(bad):
    with pytest.raises(ValueError):
        window_spans(10, bad["window"], bad["stride"], bad.get("last", "keep"))


@pytest.mark.parametrize("policy", LAST_WINDOW_POLICIES)
def test_streaming_windower_matches_spans(policy):
    rng = np.random.default_rng(3)
    for trial in range(60):
        length = int(rng.integers(0, 200))
        window = int(rng.integers(1, 40))
        stride = int(rng.integers(1, 50))
        ids = rng.integers(5, 10, size=length).astype(np.uint8)
        mask = rng.random(length) < 0.3
        cuts = np.sort(rng.integers(0, length + 1, size=int(rng.integers(0, 8))))
        windower = Windower(window, stride, policy)
        got = []
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, length], strict=True):
            got += [
                (w.start, w.end, w.ids.copy(), w.softmask.copy()) for w in windower.feed(ids[a:b], mask[a:b])
            ]
        got += [(w.start, w.end, w.ids.copy(), w.softmask.copy()) for w in windower.finish()]
        assert [(s, e) for s, e, _, _ in got] == window_spans(length, window, stride, policy), trial
        for start, end, w_ids, w_mask in got:
            assert np.array_equal(w_ids[: end - start], ids[start:end])
            assert np.array_equal(w_mask[: end - start], mask[start:end])
            if policy == "pad":
                assert w_ids.size == max(window, end - start)
                assert (w_ids[end - start :] == PAD_ID).all() and not w_mask[end - start :].any()
            else:
                assert w_ids.size == end - start


def test_windower_buffer_stays_small():
    windower = Windower(100, 100, "shift")
    for _ in range(50):
        list(windower.feed(np.full(1000, 5, np.uint8), None))
        assert windower._ids.size <= 100 + 1000
    assert [w.start for w in windower.finish()] == []  # 50,000 is a multiple of 100
