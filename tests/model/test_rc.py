"""Reverse-complement equivariance (parameter sharing) and invariance (both strategies)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_cases import TOL, make_model, pad_batch, random_bases, scramble_attention

from genomamba.alphabet import reverse_complement
from genomamba.model.config import POOLINGS
from genomamba.model.rc import complement_table, flip_real, permute_vocab, rc_hidden, reverse_complement_ids

LENGTHS = [40, 23, 1, 9]
SEQ_HEAD = {"task": "sequence", "problem_type": "multiclass", "num_labels": 3}


def _batch(seed=0):
    rows = [random_bases(1, n, seed=seed + i)[0] for i, n in enumerate(LENGTHS)]
    ids, mask = pad_batch(rows, max(LENGTHS) + 5)
    return ids, mask, torch.tensor(LENGTHS)


def _real(t, lengths):
    """Real positions of a (batch, L, ...) tensor, concatenated (padded entries carry no meaning)."""
    return torch.cat([t[i, :n] for i, n in enumerate(lengths.tolist())])


def test_reverse_complement_ids_matches_alphabet_per_row():
    ids, mask, lengths = _batch()
    rc = reverse_complement_ids(ids, lengths, complement_table(10))
    for i, n in enumerate(LENGTHS):
        assert np.array_equal(rc[i, :n].numpy(), reverse_complement(ids[i, :n].numpy()))
        assert torch.equal(rc[i, n:], complement_table(10)[ids[i, n:]])  # pads stay where they were
    assert torch.equal(reverse_complement_ids(rc, lengths, complement_table(10)), ids)


def test_flip_real_reverses_only_real_positions():
    t = torch.arange(12.0).view(2, 6, 1)
    out = flip_real(t, torch.tensor([6, 3]))
    assert out[:, :, 0].tolist() == [[5, 4, 3, 2, 1, 0], [8, 7, 6, 9, 10, 11]]


@pytest.mark.parametrize("tie, combine", [(True, "sum"), (True, "product"), (False, "sum")])
def test_ps_token_logits_are_rc_equivariant(tie, combine):
    """logits(RC x)[j] == complement-permuted logits(x)[n-1-j], for a padded batch."""
    model = make_model(rc_strategy="ps", tie_projections=tie, combine=combine)
    ids, mask, lengths = _batch()
    table = model.backbone.complement
    out = model(ids, mask)
    out_rc = model(reverse_complement_ids(ids, lengths, table), mask)
    expected = permute_vocab(flip_real(out.logits, lengths), table)
    torch.testing.assert_close(_real(out_rc.logits, lengths), _real(expected, lengths), **TOL)
    # the backbone itself: strands swap, positions reverse
    torch.testing.assert_close(
        _real(out_rc.hidden_states, lengths), _real(rc_hidden(out.hidden_states, lengths), lengths), **TOL
    )
    # and the logits are not trivially symmetric: x and RC(x) do give different raw outputs
    assert not torch.allclose(_real(out_rc.logits, lengths), _real(out.logits, lengths), atol=1e-3)


def test_ph_conjoined_token_logits_are_rc_equivariant():
    model = make_model(rc_strategy="ph")
    ids, mask, lengths = _batch()
    table = model.backbone.complement
    out = model(ids, mask)  # eval mode: conjoined by default
    out_rc = model(reverse_complement_ids(ids, lengths, table), mask)
    expected = permute_vocab(flip_real(out.logits, lengths), table)
    torch.testing.assert_close(_real(out_rc.logits, lengths), _real(expected, lengths), **TOL)


@pytest.mark.parametrize("strategy", ["ps", "ph"])
@pytest.mark.parametrize("pooling", POOLINGS)
def test_sequence_classification_is_rc_invariant(strategy, pooling):
    model = make_model(rc_strategy=strategy, head={**SEQ_HEAD, "pooling": pooling})
    scramble_attention(model)
    ids, mask, lengths = _batch()
    rc = reverse_complement_ids(ids, lengths, model.backbone.complement)
    torch.testing.assert_close(model(rc, mask).logits, model(ids, mask).logits, **TOL)


def test_plain_model_is_not_rc_invariant():
    """Sanity check for the two tests above: without a strategy RC(x) does change the output."""
    model = make_model(rc_strategy="none", head=SEQ_HEAD)
    ids, mask, lengths = _batch()
    rc = reverse_complement_ids(ids, lengths, model.backbone.complement)
    assert not torch.allclose(model(rc, mask).logits, model(ids, mask).logits, atol=1e-4)


@pytest.mark.parametrize("strategy", ["ps", "ph"])
def test_token_classification_follows_rc(strategy):
    model = make_model(rc_strategy=strategy, head={"task": "token", "num_labels": 4})
    ids, mask, lengths = _batch()
    out = model(ids, mask).logits
    out_rc = model(reverse_complement_ids(ids, lengths, model.backbone.complement), mask).logits
    torch.testing.assert_close(_real(out_rc, lengths), _real(flip_real(out, lengths), lengths), **TOL)


@pytest.mark.parametrize("strategy", ["ps", "ph"])
def test_embeddings_are_rc_symmetric(strategy):
    model = make_model(rc_strategy=strategy, head={"task": "none"})
    ids, mask, lengths = _batch()
    rc = reverse_complement_ids(ids, lengths, model.backbone.complement)
    per_base, per_base_rc = model.embed(ids, mask), model.embed(rc, mask)
    expected = flip_real(per_base, lengths)
    torch.testing.assert_close(_real(per_base_rc, lengths), _real(expected, lengths), **TOL)
    for pooling in ("mean", "first"):
        pooled, pooled_rc = model.embed(ids, mask, pooling=pooling), model.embed(rc, mask, pooling=pooling)
        torch.testing.assert_close(pooled_rc, pooled, **TOL)


def test_ph_conjoins_in_eval_only_unless_asked():
    model = make_model(rc_strategy="ph", head=SEQ_HEAD)
    ids, mask, _ = _batch()
    eval_logits = model(ids, mask).logits
    torch.testing.assert_close(model(ids, mask, conjoin=True).logits, eval_logits, rtol=0, atol=0)
    model.train()
    assert not torch.allclose(model(ids, mask).logits, eval_logits, atol=1e-6)
    torch.testing.assert_close(model(ids, mask, conjoin=True).logits, eval_logits, **TOL)
