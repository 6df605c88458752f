"""The small CNN baseline (genomamba.suite.cnn) on CPU: shapes, masking, determinism, a learnable task."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import matthews_corrcoef

from genomamba.runtime.batching import pad_batch
from genomamba.suite.cnn import CNNConfig, SmallCNN, fit_cnn
from tests.suite.suite_cases import ids, motif_task

CPU = dict(device="cpu")


def random_seqs(n: int, lengths, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [ids("".join(rng.choice(list("ACGTN"), size=int(rng.choice(lengths))))) for _ in range(n)]


def test_any_length_gives_logits_of_k_classes():
    model = SmallCNN(3).eval()
    for length in (1, 2, 7, 8, 9, 100):
        batch, mask = pad_batch(random_seqs(4, [length]))
        assert model(batch, mask).shape == (4, 3)


@pytest.mark.parametrize("bins", [1, 8])
def test_padding_does_not_change_a_sequence_in_eval_mode(bins):
    torch.manual_seed(0)
    model = SmallCNN(2, position_bins=bins).eval()
    seqs = random_seqs(6, [13, 30, 57, 101], seed=1)
    batch, mask = pad_batch(seqs)
    assert mask is not None
    with torch.no_grad():
        together = model(batch, mask)
        alone = torch.cat([model(*pad_batch([s])) for s in seqs])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def test_segment_max_splits_each_rows_valid_positions():
    model = SmallCNN(2, position_bins=2)
    x = torch.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0]], [[1.0, 2.0, 3.0, 0.0, 0.0]], [[7.0, 0.0, 0.0, 0.0, 0.0]]])
    count = torch.tensor([[5.0], [3.0], [1.0]])
    # row of 5: positions 0-2 | 3-4; row of 3: 0-1 | 2; row of 1: only the first segment is reached
    expected = torch.tensor([[[3.0, 5.0]], [[2.0, 3.0]], [[7.0, 0.0]]])
    torch.testing.assert_close(model._segment_max(x, count), expected)


def test_learns_a_motif_at_a_fixed_position():
    train, y_train = motif_task(400, seed=0)
    test, y_test = motif_task(200, seed=1)
    probs = fit_cnn(train, y_train, test, seed=0, config=CNNConfig(epochs=15, **CPU))
    assert probs.shape == (200, 2) and probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert matthews_corrcoef(y_test, probs.argmax(axis=1)) > 0.6


def test_fixed_seed_is_deterministic_and_leaves_the_global_rng_alone():
    train, y_train = motif_task(120, seed=2)
    test, _ = motif_task(20, seed=3)
    config = CNNConfig(epochs=3, batch_size=16, **CPU)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = fit_cnn(train, y_train, test, seed=7, config=config)
    assert torch.equal(torch.get_rng_state(), before)
    np.testing.assert_array_equal(first, fit_cnn(train, y_train, test, seed=7, config=config))
    assert not np.array_equal(first, fit_cnn(train, y_train, test, seed=8, config=config))


def test_given_validation_variable_lengths_three_classes_and_one_log_line_per_epoch():
    rng = np.random.default_rng(4)
    train, val = random_seqs(60, [20, 35, 50], seed=5), random_seqs(15, [20, 50], seed=6)
    lines: list[str] = []
    probs = fit_cnn(
        train,
        rng.integers(0, 3, size=60),
        random_seqs(7, [10, 80], seed=7),
        seed=0,
        val_seqs=val,
        val_y=rng.integers(0, 3, size=15),
        config=CNNConfig(epochs=4, patience=2, **CPU),
        log=lines.append,
    )
    assert probs.shape == (7, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert 1 <= len(lines) <= 4 and all(line.startswith("cnn epoch") for line in lines)


def test_bad_arguments():
    seqs, y = motif_task(20, seed=0)
    with pytest.raises(ValueError, match="both val_seqs and val_y"):
        fit_cnn(seqs, y, seqs, seed=0, val_seqs=seqs, config=CNNConfig(**CPU))
    with pytest.raises(ValueError, match="val_fraction"):
        fit_cnn(seqs, y, seqs, seed=0, config=CNNConfig(val_fraction=0.0, **CPU))
    with pytest.raises(ValueError, match="one class"):
        fit_cnn(seqs, np.zeros(20, np.int64), seqs, seed=0, config=CNNConfig(**CPU))
