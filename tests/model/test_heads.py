"""Heads: masked pooling, initial losses of fresh heads, tied/untied MLM decoder, loss edge cases."""

from __future__ import annotations

import math

import pytest
import torch
from model_cases import make_model, pad_batch, random_bases

from genomamba.model.heads import pool


def test_pooling_uses_real_positions_only():
    h = torch.randn(3, 7, 4)
    lengths = torch.tensor([7, 3, 1])
    mask = torch.arange(7)[None] < lengths[:, None]
    for i, n in enumerate(lengths.tolist()):
        real = h[i, :n]
        torch.testing.assert_close(pool(h, mask, lengths, "mean")[i], real.mean(0))
        torch.testing.assert_close(pool(h, mask, lengths, "max")[i], real.amax(0))
        torch.testing.assert_close(pool(h, mask, lengths, "first")[i], real[0])
        torch.testing.assert_close(pool(h, mask, lengths, "last")[i], real[-1])
    with pytest.raises(ValueError, match="pooling"):
        pool(h, mask, lengths, "median")


def _fresh_loss(head: dict, labels_fn, strategy="none", seed=0) -> float:
    model = make_model(seed=seed, dtype=torch.float32, rc_strategy=strategy, d_model=32, head=head)
    ids, mask = pad_batch([random_bases(1, n, seed=i)[0] for i, n in enumerate([64, 50, 40, 33] * 4)], 64)
    with torch.no_grad():
        return model(ids, mask, labels=labels_fn(ids.shape)).loss.item()


@pytest.mark.parametrize("strategy", ["none", "ps"])
@pytest.mark.parametrize("num_classes", [2, 5, 20])
def test_fresh_multiclass_head_starts_at_log_num_classes(strategy, num_classes):
    head = {"task": "sequence", "problem_type": "multiclass", "num_labels": num_classes}
    g = torch.Generator().manual_seed(1)
    loss = _fresh_loss(head, lambda s: torch.randint(0, num_classes, (s[0],), generator=g), strategy)
    assert abs(loss - math.log(num_classes)) < 0.05 * math.log(num_classes) + 0.02


def test_fresh_binary_multilabel_token_and_mlm_heads_start_near_chance():
    g = torch.Generator().manual_seed(2)
    binary = _fresh_loss({"task": "sequence", "problem_type": "binary"},
                         lambda s: torch.randint(0, 2, (s[0],), generator=g).float())
    multilabel = _fresh_loss({"task": "sequence", "problem_type": "multilabel", "num_labels": 6},
                             lambda s: torch.randint(0, 2, (s[0], 6), generator=g).float())
    token = _fresh_loss({"task": "token", "num_labels": 4}, lambda s: torch.randint(0, 4, s, generator=g))
    mlm = _fresh_loss({"task": "mlm"}, lambda s: torch.randint(5, 10, s, generator=g))
    chances = (math.log(2), math.log(2), math.log(4), math.log(10))
    for value, chance in zip((binary, multilabel, token, mlm), chances, strict=True):
        assert abs(value - chance) < 0.05 * chance + 0.02, (value, chance)


def test_tied_mlm_decoder_is_the_embedding():
    tied = make_model(head={"task": "mlm", "tie_embeddings": True})
    untied = make_model(head={"task": "mlm", "tie_embeddings": False})
    assert not hasattr(tied.head, "decoder")
    assert untied.num_parameters() == tied.num_parameters() + 10 * 16
    ids = random_bases(2, 12)
    before = tied(ids).logits
    with torch.no_grad():
        tied.backbone.embedding.weight[5:10] *= 1.5  # changes inputs and decoder alike
        tied.backbone.layers.requires_grad_(False)
    after = tied(ids).logits
    assert not torch.allclose(before, after)
    # gradient reaches the embedding through the decoder path too
    out = tied(ids, labels=ids)
    out.loss.backward()
    assert tied.backbone.embedding.weight.grad.abs().sum() > 0


def test_per_token_loss_with_nothing_to_count_is_zero_not_nan():
    model = make_model(dtype=torch.float32)
    model.train()
    ids = random_bases(2, 10)
    out = model(ids, labels=torch.full_like(ids, -100))
    assert out.loss.item() == 0.0
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_regression_and_binary_label_shapes():
    reg = make_model(head={"task": "sequence", "problem_type": "regression", "num_labels": 1})
    ids = random_bases(3, 9)
    a = reg(ids, labels=torch.tensor([0.5, 1.0, -1.0])).loss
    b = reg(ids, labels=torch.tensor([[0.5], [1.0], [-1.0]])).loss
    assert a.shape == () and torch.equal(a, b)
    binary = make_model(head={"task": "sequence", "problem_type": "binary"})
    assert binary(ids).logits.shape == (3, 1)
    torch.testing.assert_close(binary(ids, labels=torch.tensor([1, 0, 1])).loss,
                               binary(ids, labels=torch.tensor([[1.0], [0.0], [1.0]])).loss)


def test_head_output_shapes():
    ids = random_bases(2, 11)
    assert make_model().forward(ids).logits.shape == (2, 11, 10)
    assert make_model(head={"task": "token", "num_labels": 3})(ids).logits.shape == (2, 11, 3)
    bare = make_model(rc_strategy="ps", head={"task": "none"})(ids)
    assert bare.logits is None and bare.loss is None and bare.hidden_states.shape == (2, 11, 32)


def test_center_pooling_takes_the_middle_real_positions():
    h = torch.randn(2, 6, 3)
    lengths = torch.tensor([5, 4])
    mask = torch.arange(6)[None] < lengths[:, None]
    pooled = pool(h, mask, lengths, "center")
    torch.testing.assert_close(pooled[0], h[0, 2])  # odd length: the middle base
    torch.testing.assert_close(pooled[1], 0.5 * (h[1, 1] + h[1, 2]))  # even: the two middle bases


def test_binned_pooling_keeps_where_each_stretch_lies():
    from genomamba.model.heads import binned_mean

    h = torch.arange(2 * 8 * 1, dtype=torch.float32).reshape(2, 8, 1)
    lengths = torch.tensor([8, 3])
    binned = binned_mean(h, lengths, 4)
    torch.testing.assert_close(binned[0, :, 0], torch.tensor([0.5, 2.5, 4.5, 6.5]))  # pairs of positions
    # 3 positions over 4 bins cover [0, 4/3), [4/3, 8/3), [8/3, 4): bin 1 is 1/3 of the first
    # and 2/3 of the second
    torch.testing.assert_close(binned[1, :, 0], torch.tensor([8.0, 26 / 3, 28 / 3, 10.0]))
    # read backwards, the bins come backwards (what keeps a two-strand model RC-invariant)
    for n in (3, 5, 6, 8):
        rows = torch.randn(1, n, 2)
        torch.testing.assert_close(binned_mean(rows.flip(1), torch.tensor([n]), 4),
                                   binned_mean(rows, torch.tensor([n]), 4).flip(1))
    padded = h.clone()
    padded[1, 3:] = 1e4  # garbage beyond the real positions changes nothing
    torch.testing.assert_close(binned_mean(padded, lengths, 4), binned)


def test_attention_pooling_starts_as_mean_and_ignores_padding():
    from genomamba.model.heads import AttentionPool

    h = torch.randn(2, 7, 8)
    lengths = torch.tensor([7, 3])
    mask = torch.arange(7)[None] < lengths[:, None]
    attention = AttentionPool(8, n_heads=4)
    torch.testing.assert_close(attention(h, mask), pool(h, mask, lengths, "mean"))
    with torch.no_grad():
        attention.score.weight.normal_()
    padded = h.clone()
    padded[1, 3:] = 1e4  # garbage beyond the real positions changes nothing
    torch.testing.assert_close(attention(padded, mask)[1], attention(h[1:2, :3], None)[0])
    # a score that singles out one position makes the pool that position's channels
    with torch.no_grad():
        attention.score.weight.zero_()
        attention.score.weight[:, 0] = 100.0
    spike = torch.zeros(1, 5, 8)
    spike[0, 2, 0] = 1.0
    spike[0, 2, 1:] = torch.arange(1.0, 8.0)
    torch.testing.assert_close(attention(spike, None)[0], spike[0, 2], atol=1e-4, rtol=0)
