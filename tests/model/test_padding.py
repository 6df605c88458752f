"""The core padding test: a sequence's embedding, predictions and loss do not depend on whether it
is alone, batched with longer sequences, or padded to any length -- in both scan directions and on
both strands of the parameter-sharing model."""

from __future__ import annotations

import pytest
import torch
from model_cases import TOL, make_model, pad_batch, random_bases, scramble_attention

LENGTHS = [48, 31, 6, 1]
HEADS = {
    "mlm": {"task": "mlm"},
    "token": {"task": "token", "num_labels": 3},
    "seq-mean": {"task": "sequence", "problem_type": "multiclass", "num_labels": 3, "pooling": "mean"},
    "seq-max": {"task": "sequence", "problem_type": "multilabel", "num_labels": 2, "pooling": "max"},
    "seq-first": {"task": "sequence", "problem_type": "binary", "pooling": "first"},
    "seq-last": {"task": "sequence", "problem_type": "regression", "num_labels": 2, "pooling": "last"},
    "seq-center": {"task": "sequence", "problem_type": "binary", "pooling": "center"},
    "seq-attention": {
        "task": "sequence", "problem_type": "multiclass", "num_labels": 3, "pooling": "attention"
    },
    "seq-binned": {"task": "sequence", "problem_type": "multiclass", "num_labels": 3, "pooling": "binned",
                   "bins": 4},
}


def _rows():
    return [random_bases(1, n, seed=10 + i)[0] for i, n in enumerate(LENGTHS)]


def _labels(head: dict, rows, length: int):
    """Labels per row: per-token ids (garbage beyond each row's end), or one target per row."""
    g = torch.Generator().manual_seed(3)
    if head["task"] in ("mlm", "token"):
        high = 10 if head["task"] == "mlm" else head["num_labels"]
        return torch.randint(0, high, (len(rows), length), generator=g)
    problem = head["problem_type"]
    if problem == "multiclass":
        return torch.randint(0, head["num_labels"], (len(rows),), generator=g)
    if problem == "binary":
        return torch.randint(0, 2, (len(rows),), generator=g).double()
    if problem == "multilabel":
        return torch.randint(0, 2, (len(rows), head["num_labels"]), generator=g).double()
    return torch.randn(len(rows), head["num_labels"], generator=g, dtype=torch.float64)


@pytest.mark.parametrize("strategy", ["none", "ps", "ph"])
@pytest.mark.parametrize("head_name", list(HEADS))
def test_alone_batched_and_padded_agree(strategy, head_name):
    head = HEADS[head_name]
    model = make_model(rc_strategy=strategy, head=head)
    scramble_attention(model)
    rows = _rows()
    per_token = head["task"] in ("mlm", "token")
    labels = _labels(head, rows, 64)

    alone = []
    for i, row in enumerate(rows):
        lab = labels[i : i + 1, : len(row)] if per_token else labels[i : i + 1]
        alone.append(model(row[None], labels=lab))

    for length, seed in ((max(LENGTHS), 1), (64, 2)):  # batched as is; padded further with other garbage
        ids, mask = pad_batch(rows, length, seed=seed)
        lab = labels[:, :length] if per_token else labels
        out = model(ids, mask, labels=lab)
        for i, n in enumerate(LENGTHS):
            torch.testing.assert_close(out.hidden_states[i, :n], alone[i].hidden_states[0], **TOL)
            if per_token:
                torch.testing.assert_close(out.logits[i, :n], alone[i].logits[0], **TOL)
            else:
                torch.testing.assert_close(out.logits[i], alone[i].logits[0], **TOL)
        # the batch loss is the right average of the lone losses: padded positions never count
        lone = torch.stack([o.loss for o in alone])
        if per_token:
            weights = torch.tensor(LENGTHS, dtype=lone.dtype)
            expected = (lone * weights).sum() / weights.sum()
        else:
            expected = lone.mean()
        torch.testing.assert_close(out.loss, expected, **TOL)
    # each row alone but padded to 64: the same loss as with no padding
    for i, row in enumerate(rows):
        one, one_mask = pad_batch([row], 64, seed=9)
        lab_i = labels[i : i + 1]
        torch.testing.assert_close(model(one, one_mask, labels=lab_i).loss, alone[i].loss, **TOL)


@pytest.mark.parametrize("strategy, decay",
                         [("none", "full"), ("ps", "full"), ("ph", "full"), ("ps", "ladder"),
                          ("ph", "scalar")])
def test_embeddings_do_not_depend_on_padding(strategy, decay):
    model = make_model(rc_strategy=strategy, head={"task": "none"}, mixer={"decay": decay})
    rows = _rows()
    ids, mask = pad_batch(rows, 64)
    per_base = model.embed(ids, mask)
    assert per_base.shape == (len(rows), 64, 16)
    for i, (row, n) in enumerate(zip(rows, LENGTHS, strict=True)):
        torch.testing.assert_close(per_base[i, :n], model.embed(row[None])[0], **TOL)
        assert torch.equal(per_base[i, n:], torch.zeros_like(per_base[i, n:]))
        for pooling in ("mean", "max", "first", "last"):
            torch.testing.assert_close(
                model.embed(ids, mask, pooling=pooling)[i], model.embed(row[None], pooling=pooling)[0], **TOL
            )


def test_lengths_and_attention_mask_are_equivalent():
    model = make_model(rc_strategy="ps")
    ids, mask = pad_batch(_rows(), 50)
    a = model(ids, mask).logits
    b = model(ids, lengths=torch.tensor(LENGTHS)).logits
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    "mask, needle",
    [
        ([[0, 1, 1, 1]], "right padding"),  # left padding
        ([[1, 0, 1, 0]], "right padding"),  # a hole
        ([[0, 0, 0, 0]], "length"),  # an empty sequence
    ],
)
def test_bad_masks_are_rejected(mask, needle):
    model = make_model()
    with pytest.raises(ValueError, match=needle):
        model(random_bases(1, 4), torch.tensor(mask))


def test_mask_and_lengths_together_are_rejected():
    model = make_model()
    with pytest.raises(ValueError, match="not both"):
        model(random_bases(1, 4), torch.ones(1, 4), lengths=torch.tensor([4]))
