"""A small CNN baseline of ``genomamba benchmark``: the Genomic Benchmarks convolutional net.

* :class:`SmallCNN` -- one-hot input, three blocks of Conv1d(kernel 8, 16 filters) + BatchNorm + ReLU +
  MaxPool(2), masked pooling over valid positions (max within 8 equal segments of each sequence, plus
  the global mean), then a two-layer head; any length, padded batches included;
* :class:`CNNConfig` -- training settings;
* :func:`fit_cnn` -- seeded training with early stopping on validation MCC; test probabilities.

Sequences are uint8 arrays of :mod:`genomamba.alphabet` token ids; labels are int class indices 0..k-1.
The Genomic Benchmarks net (Gresova et al., BMC Genomic Data 2023) flattens the last feature map into a
dense layer, which fixes the input length; here a pooling over each sequence's own valid length takes
its place so that one net serves every task, variable-length ones included.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from sklearn.metrics import matthews_corrcoef
from torch import nn

from genomamba.alphabet import ACGT_IDS
from genomamba.runtime.batching import pad_batch
from genomamba.runtime.device import resolve_device
from genomamba.suite.baselines import check_labels

_PREDICT_BATCH = 256


@dataclass
class CNNConfig:
    """Training settings of :func:`fit_cnn`. ``device``: ``auto`` (CUDA when available), ``cpu`` or
    ``cuda``."""

    epochs: int = 30
    patience: int = 5  # epochs without a better validation MCC before stopping
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    val_fraction: float = 0.1  # of train, stratified, when no validation set is given
    device: str = "auto"


class SmallCNN(nn.Module):
    """Token ids ``(b, L)`` (+ optional valid mask ``(b, L)`` bool) -> logits ``(b, n_classes)``.

    Convolutions are zero-padded to keep the length (so any L >= 1 works) and every block's output is
    zeroed past each sequence's end, so in eval mode a sequence gets the same logits alone as in a batch
    padded to a longer one. Batch norm in training mode does see the zeros of padded positions.

    Pooling, over each sequence's valid positions only: the max of each filter within ``position_bins``
    equal segments of the sequence ("is this pattern present, and roughly where"), concatenated with
    the global mean ("how dense is it": composition, which the k-mer baseline shows carries much of the
    signal on e.g. nucleosome tasks). ``position_bins=1`` is plain global max + mean pooling, which is
    blind to position beyond the ~60 bp receptive field; measured over 3 seeds on CPU, test MCC x 100
    (global max+mean -> 8 bins + mean): GUE_splice_reconstructed ~3 -> 60, GUE_prom_300_tata ~46 -> 63,
    GUE_EMP_H3 ~55 -> 56. For variable-length tasks a segment is a fraction of each sequence.
    """

    def __init__(
        self,
        n_classes: int,
        *,
        channels: int = 16,
        kernel_size: int = 8,
        hidden: int = 64,
        dropout: float = 0.3,
        position_bins: int = 8,
    ):
        super().__init__()
        if position_bins < 1:
            raise ValueError(f"position_bins must be >= 1, got {position_bins}")
        self.position_bins = position_bins
        # id -> one-hot over A C G T; N, [PAD] and every other token are all zeros.
        onehot = torch.zeros(256, 4)
        onehot[torch.from_numpy(ACGT_IDS.astype(np.int64)), torch.arange(4)] = 1.0
        self.register_buffer("onehot", onehot, persistent=False)
        self.kernel_size = kernel_size
        widths = [4, channels, channels, channels]
        self.convs = nn.ModuleList(
            nn.Conv1d(a, b, kernel_size) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(channels) for _ in range(3))
        # ReLU between the two linear layers: without it they would collapse into one linear map.
        self.head = nn.Sequential(
            nn.Linear((position_bins + 1) * channels, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.onehot[ids.long()].transpose(1, 2)  # (b, 4, L)
        valid = (mask if mask is not None else torch.ones_like(ids, dtype=torch.bool)).to(x.dtype)[:, None]
        # Explicit "same" padding: F.conv1d(padding="same") warns about even kernels and copies anyway.
        pad = ((self.kernel_size - 1) // 2, self.kernel_size // 2)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = torch.relu(norm(conv(F.pad(x * valid, pad))))
            # ceil_mode keeps a last odd position (a length-1 input stays length 1); the mask pools the
            # same way, and masked zeros never win a max against ReLU outputs (>= 0).
            x = F.max_pool1d(x * valid, 2, ceil_mode=True)
            valid = F.max_pool1d(valid, 2, ceil_mode=True)
        x = x * valid
        count = valid.sum(dim=-1)  # (b, 1) valid positions left
        pooled = torch.cat([self._segment_max(x, count).flatten(1), x.sum(dim=-1) / count], dim=1)
        return self.head(pooled)

    def _segment_max(self, x: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        """``(b, c, bins)``: max of ``x`` (>= 0, zero past the end) within equal segments of each row's
        ``count`` valid positions; position j of a row of n goes to segment ``j * bins // n``."""
        bins = self.position_bins
        positions = torch.arange(x.shape[-1], device=x.device)[None]  # (1, L)
        n = count.long().clamp(min=1)  # (b, 1)
        # Positions past the end land in the last segment, where their zeros never win a max.
        segment = torch.div(positions * bins, n, rounding_mode="floor").clamp(max=bins - 1)  # (b, L)
        out = x.new_zeros(x.shape[0], x.shape[1], bins)  # a segment a short row does not reach stays 0
        return out.scatter_reduce(2, segment[:, None].expand_as(x), x, reduce="amax", include_self=True)


def fit_cnn(
    train_seqs: Sequence[np.ndarray],
    train_y: np.ndarray,
    test_seqs: Sequence[np.ndarray],
    *,
    seed: int,
    val_seqs: Sequence[np.ndarray] | None = None,
    val_y: np.ndarray | None = None,
    config: CNNConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> np.ndarray:
    """Train a :class:`SmallCNN` and return softmax probabilities ``(n_test, k)`` float64 on the test set.

    Validation: ``val_seqs``/``val_y`` when given, else a seeded stratified ``config.val_fraction`` of
    train (held out of training). After every epoch the validation MCC is measured; training stops after
    ``config.patience`` epochs without improvement and the best epoch's weights score the test set.
    ``config`` None means ``CNNConfig()``. ``k`` is the largest label in train (or validation) + 1.
    Deterministic on CPU for a fixed ``seed``; the global torch RNG state is restored afterwards.
    ``log`` gets one line per epoch.

    Raises:
        ValueError: bad labels, only one of ``val_seqs``/``val_y``, or a validation set left empty.
        UnavailableError: ``config.device == "cuda"`` without a GPU.
    """
    config = config if config is not None else CNNConfig()
    y, n_classes = check_labels(train_y, len(train_seqs))
    if (val_seqs is None) != (val_y is None):
        raise ValueError("give both val_seqs and val_y, or neither")
    rng = np.random.default_rng(seed)
    train_seqs = list(train_seqs)
    if val_seqs is None:
        held = _stratified_holdout(y, config.val_fraction, rng)
        keep = np.setdiff1d(np.arange(len(y)), held)
        val_seqs, val_y = [train_seqs[i] for i in held], y[held]
        train_seqs, y = [train_seqs[i] for i in keep], y[keep]
    val_y = np.asarray(val_y, dtype=np.int64)
    if len(val_y) == 0 or len(y) == 0:
        raise ValueError(
            "the training or validation set is empty; give more rows or a val_fraction in (0, 1)"
        )
    n_classes = max(n_classes, int(val_y.max()) + 1)
    device = resolve_device(config.device)
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        model = SmallCNN(n_classes).to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        labels = torch.from_numpy(y).to(device)
        best_mcc, best_epoch, best_state, stale = -np.inf, 0, None, 0
        for epoch in range(1, config.epochs + 1):
            started = time.perf_counter()
            model.train()
            order = rng.permutation(len(y))
            total, seen = 0.0, 0
            for first in range(0, len(order), config.batch_size):
                rows = order[first : first + config.batch_size]
                ids, mask = pad_batch([train_seqs[i] for i in rows], device)
                loss = F.cross_entropy(model(ids, mask), labels[torch.from_numpy(rows).to(device)])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += loss.item() * len(rows)
                seen += len(rows)
            mcc = float(matthews_corrcoef(val_y, predict_cnn(model, val_seqs).argmax(axis=1)))
            improved = mcc > best_mcc
            if improved:
                best_mcc, best_epoch, stale = mcc, epoch, 0
                best_state = {name: t.detach().clone() for name, t in model.state_dict().items()}
            else:
                stale += 1
            if log is not None:
                log(
                    f"cnn epoch {epoch}/{config.epochs}: train loss {total / seen:.4f}, val MCC {mcc:.4f}"
                    f"{' (best)' if improved else f' (best {best_mcc:.4f} at {best_epoch})'}, "
                    f"{time.perf_counter() - started:.1f}s"
                )
            if stale >= config.patience:
                break
        model.load_state_dict(best_state)
        return predict_cnn(model, test_seqs)


def predict_cnn(model: SmallCNN, sequences: Sequence[np.ndarray]) -> np.ndarray:
    """Softmax probabilities ``(n, k)`` float64 in eval mode, in input order."""
    sequences = list(sequences)
    model.eval()
    device = next(model.parameters()).device
    parts = []
    with torch.no_grad():
        for first in range(0, len(sequences), _PREDICT_BATCH):
            ids, mask = pad_batch(sequences[first : first + _PREDICT_BATCH], device)
            parts.append(torch.softmax(model(ids, mask).double(), dim=-1).cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, model.head[-1].out_features))


def _stratified_holdout(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of about ``fraction`` of each class (at least one of any class with two or more
    rows, so every class is seen by validation and by training when it can be)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
    held = []
    for cls in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == cls))
        take = min(max(int(round(fraction * len(members))), 1), len(members) - 1)
        held.append(members[:take])
    return np.sort(np.concatenate(held))
