"""Windows read with the whole sequence as context equal the one-pass hidden states of the whole
sequence pooled (or put through the sequence head) over each window's span.

Float64 models on CPU, chunks of 16 positions, so windows start, end and span chunk boundaries.
Tolerance: model_cases.TOL (rtol 2e-5, atol 2e-6): the scans keep their state in float32 even
for float64 inputs, so the streamed and one-pass paths agree to float32 rounding.
"""

from __future__ import annotations

import pytest
import torch
from model_cases import TOL, make_model, random_bases, scramble_attention

from genomamba.model.heads import pool_strands
from genomamba.model.rc import reverse_complement_ids
from genomamba.model.streaming_windows import streamed_window_embeddings, streamed_window_logits

LENGTH, CHUNK = 120, 16
# regular windows of 30 every 20, a shifted last window (starts before the one ahead of it), a
# window inside one chunk, one of a single base, windows on and just past chunk boundaries, and
# the whole sequence
SPANS = [(0, 30), (20, 50), (40, 70), (60, 90), (80, 110), (90, 120), (33, 40), (7, 8), (16, 48), (15, 33),
         (0, LENGTH)]
BINARY = {"task": "sequence", "problem_type": "binary", "num_labels": 1}
MULTICLASS = {"task": "sequence", "problem_type": "multiclass", "num_labels": 3}


def _one_pass_hidden(model, ids, conjoin: bool, layer=None) -> list[torch.Tensor]:
    """The backbone's output over the whole sequence, and over its reverse complement if conjoined."""
    with torch.inference_mode():
        hidden = [model.backbone(ids, depth=layer)]
        if conjoin:
            lengths = torch.full((ids.shape[0],), ids.shape[1])
            rc = reverse_complement_ids(ids, lengths, model.backbone.complement)
            hidden.append(model.backbone(rc, depth=layer))
    return hidden


def _over_span(hidden: list[torch.Tensor], span: tuple[int, int], read) -> torch.Tensor:
    """``read(rows)`` of the window's rows on each strand's pass, averaged over the passes."""
    s, e = span
    length = hidden[0].shape[1]
    values = [read(hidden[0][:, s:e])]
    if len(hidden) == 2:  # the window on the reverse complement: [L - e, L - s)
        values.append(read(hidden[1][:, length - e : length - s]))
    return values[0] if len(values) == 1 else 0.5 * (values[0] + values[1])


@pytest.mark.parametrize("rc_strategy, conjoin", [("ph", True), ("ps", None), ("ps", True), ("none", None)])
@pytest.mark.parametrize("pooling", ["mean", "max", "first", "last", "center"])
def test_embeddings_pool_the_one_pass_hidden_states_over_each_window(rc_strategy, conjoin, pooling):
    model = make_model(seed=3, n_layer=2, rc_strategy=rc_strategy)
    ids = random_bases(2, LENGTH, seed=4)
    got = streamed_window_embeddings(model, ids, SPANS, chunk=CHUNK, device="cpu", pooling=pooling,
                                     conjoin=conjoin)
    hidden = _one_pass_hidden(model, ids, bool(conjoin))
    s = model.config.n_strands
    for i, span in enumerate(SPANS):
        n = torch.full((2,), span[1] - span[0])
        want = _over_span(hidden, span, lambda rows, n=n: pool_strands(rows, None, n, pooling, s))
        torch.testing.assert_close(got[:, i], want, **TOL, msg=f"{pooling} {span}")


def test_a_layer_and_the_whole_sequence_as_one_window_equal_model_embed():
    model = make_model(seed=5, n_layer=3, rc_strategy="ph")
    ids = random_bases(1, LENGTH, seed=6)
    for pooling in ("mean", "center"):
        got = streamed_window_embeddings(model, ids, [(0, LENGTH)], chunk=CHUNK, device="cpu",
                                         pooling=pooling, layer=2)
        torch.testing.assert_close(got[:, 0], model.embed(ids, pooling=pooling, layer=2), **TOL)
    got = streamed_window_embeddings(model, ids, [(20, 50)], chunk=CHUNK, device="cpu", layer=2)
    hidden = _one_pass_hidden(model, ids, True, layer=2)
    want = _over_span(hidden, (20, 50), lambda rows: rows.mean(1))
    torch.testing.assert_close(got[:, 0], want, **TOL)


@pytest.mark.parametrize("rc_strategy, head, pooling", [
    ("ph", BINARY, "mean"), ("ps", MULTICLASS, "mean"), ("ph", MULTICLASS, "attention"),
    ("ps", BINARY, "attention"), ("ps", BINARY, "center"), ("ps", MULTICLASS, "binned"),
    ("ph", BINARY, "binned")])
def test_logits_are_the_head_over_the_one_pass_slices(rc_strategy, head, pooling):
    model = make_model(seed=7, n_layer=2, rc_strategy=rc_strategy, head={**head, "pooling": pooling})
    scramble_attention(model)
    ids = random_bases(1, LENGTH, seed=8)
    got = streamed_window_logits(model, ids, SPANS, chunk=CHUNK, device="cpu")
    hidden = _one_pass_hidden(model, ids, rc_strategy == "ph")
    for i, span in enumerate(SPANS):
        n = torch.full((1,), span[1] - span[0])
        with torch.inference_mode():
            want = _over_span(hidden, span, lambda rows, n=n: model.head(rows, None, n))
        torch.testing.assert_close(got[:, i], want, **TOL, msg=str(span))
    # a window that is the whole sequence: the model's own prediction
    torch.testing.assert_close(got[:, -1], model.predict(ids).logits, **TOL)


def test_a_short_window_inside_a_long_sequence_sees_its_context():
    """The record's context changes a 10-base window's embedding well beyond rounding."""
    model = make_model(seed=9, n_layer=2, rc_strategy="ph")
    ids = random_bases(1, LENGTH, seed=10)
    in_context = streamed_window_embeddings(model, ids, [(55, 65)], chunk=CHUNK, device="cpu")[:, 0]
    alone = model.embed(ids[:, 55:65], pooling="mean")
    assert (in_context - alone).abs().max() > 1e-3


def test_progress_adds_up_to_the_length_over_both_passes():
    model = make_model(seed=1, n_layer=2, rc_strategy="ph")
    done = []
    streamed_window_embeddings(model, random_bases(1, 50, seed=1), [(0, 25), (25, 50)], chunk=7, device="cpu",
                               progress=done.append)
    assert sum(done) == pytest.approx(50)


def test_bad_requests_are_refused():
    model = make_model(seed=1, n_layer=2, rc_strategy="ps")
    ids = random_bases(1, 20, seed=1)
    for spans, message in (([(5, 5)], "empty or outside"), ([(10, 21)], "empty or outside"),
                           ([], "no window")):
        with pytest.raises(ValueError, match=message):
            streamed_window_embeddings(model, ids, spans, chunk=8, device="cpu")
    with pytest.raises(ValueError, match="pooling must be one of"):
        streamed_window_embeddings(model, ids, [(0, 5)], chunk=8, device="cpu", pooling="attention")
    with pytest.raises(ValueError, match="need a sequence head"):
        streamed_window_logits(model, ids, [(0, 5)], chunk=8, device="cpu")
