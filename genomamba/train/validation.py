"""Held-out validation during pretraining: the masked-LM loss on fixed crops of sequence never trained on.

Each ``val_data`` directory (token shards of held-out regions, e.g. the pretraining corpus's
``heldout_tokens/<genome>``) is one validation set, named by its directory. Every
``val_every`` steps and at the end, the model is evaluated on every set at every crop length of
``val_seq_lens``; each (set, crop length) gives one record of ``val_metrics.jsonl``.

The crops and masks are drawn once, when the run starts, and are the same at every validation,
after a resume, and in any other run with the same ``val_tokens`` and crop lengths on the same
directory: they come from a generator seeded by the set's name alone, never from the training
streams or the global RNGs, so validating changes nothing about training.

* ``max(1, val_tokens // L_max)`` crops of the longest crop length ``L_max`` are drawn as training
  draws them (:class:`~genomamba.train.data.CropSampler`: windows in proportion to their length,
  windows over ``max_n_fraction`` N skipped, reverse-complemented with probability 1/2 when the
  run augments) and masked as training masks them (:func:`~genomamba.train.masking.bert_mask`);
* each shorter crop length ``L`` cuts those crops into consecutive pieces of ``L`` (the last piece
  right-padded). Every crop length thus scores the same bases under the same masks, and differs
  only in how much context the model sees: a lower loss at 131,072 than at 1,024 bases is context
  put to use. Pieces with nothing to score are skipped.

Evaluation runs in eval mode, without gradients and under the training autocast
(:func:`~genomamba.runtime.precision.autocast_for`); under ``torchrun`` the ranks share the crops
(rank ``r`` of ``W`` takes crops ``r, r + W, ...``) and sum their totals.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from genomamba.alphabet import PAD_ID
from genomamba.io.shards import TokenShards
from genomamba.runtime.distributed import Distributed
from genomamba.runtime.precision import autocast_for
from genomamba.train.config import PretrainConfig, validation_set_name
from genomamba.train.data import CropSampler, open_shards
from genomamba.train.masking import IGNORE_INDEX, bert_mask
from genomamba.train.metrics import perplexity

__all__ = ["VAL_METRICS_FILE", "Validation", "ValidationSet", "summary_line", "validation_rng"]

VAL_METRICS_FILE = "val_metrics.jsonl"


def validation_rng(name: str) -> np.random.Generator:
    """The generator of the validation set ``name``: seeded by the name alone (PCG64), so that
    runs of any seed validate on the same crops and masks."""
    entropy = int.from_bytes(hashlib.sha256(f"genomamba-validation:{name}".encode()).digest()[:16], "little")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


@dataclass
class ValidationSet:
    """The fixed crops of one validation set at each crop length: ``crops[L] = (inputs, labels)``,
    ``inputs`` uint8 ``(n, L)`` (masked ids, PAD-padded) and ``labels`` int16 ``(n, L)`` (the
    original base at scored positions, ``IGNORE_INDEX`` elsewhere)."""

    name: str
    directory: str
    crops: dict[int, tuple[np.ndarray, np.ndarray]]

    @classmethod
    def draw(
        cls, store: TokenShards, lengths: list[int], tokens: int, mask_prob: float, max_n_fraction: float,
        rc_augment: bool,
    ) -> ValidationSet:
        """Draw the crops of the opened token-shard directory ``store`` (see the module docstring).

        Raises:
            InputDataError: no window left after the N filter.
        """
        name = validation_set_name(store.directory)
        sampler = CropSampler([store], 0, max_n_fraction, rc_augment)
        longest = max(lengths)
        rng = validation_rng(name)
        ids = sampler.sample(max(1, tokens // longest), longest, rng)
        inputs, labels = bert_mask(ids, rng, mask_prob)
        crops = {length: _pieces(inputs, labels, length) for length in lengths}
        return cls(name, str(store.directory), crops)


def _pieces(inputs: np.ndarray, labels: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Crops ``(n, L_max)`` cut into consecutive pieces of ``length``, the last of each crop
    right-padded; pieces without a scored position are dropped."""
    n, longest = inputs.shape
    width = math.ceil(longest / length) * length
    padded_inputs = np.full((n, width), PAD_ID, dtype=np.uint8)
    padded_labels = np.full((n, width), IGNORE_INDEX, dtype=np.int16)
    padded_inputs[:, :longest] = inputs
    padded_labels[:, :longest] = labels
    padded_inputs = padded_inputs.reshape(-1, length)
    padded_labels = padded_labels.reshape(-1, length)
    scored = (padded_labels != IGNORE_INDEX).any(axis=1)
    return padded_inputs[scored], padded_labels[scored]


class Validation:
    """The validation sets of a pretraining run, when to evaluate them, and how.

    Args:
        config: the run configuration (``val_data``, ``val_every``, ``val_tokens``,
            ``val_seq_lens``; masking, N filter and strand augmentation as in training).

    Raises:
        InputDataError: a ``val_data`` directory is missing, not a token-shard directory, damaged
            (checked as ``--data`` is, sha256 too with ``verify_shards``), or has no window left
            after the N filter. Raised before anything is written.
    """

    def __init__(self, config: PretrainConfig):
        # every directory is checked before any crop is drawn
        stores = open_shards(config.val_data, verify_checksums=config.verify_shards)
        self.config = config
        self.every = config.validation_every
        self.sets = [
            ValidationSet.draw(store, config.validation_lengths, config.val_tokens, config.mask_prob,
                               config.max_n_fraction, config.rc_augment)
            for store in stores
        ]
        # crops per forward pass: the tokens of one training pass (evaluation keeps no activations)
        self.pass_tokens = config.batch_size * config.seq_len

    def due(self, step: int) -> bool:
        """Whether to validate after optimiser step ``step``: every ``val_every`` steps and at the end."""
        return step % self.every == 0 or step == self.config.max_steps

    def run(
        self, model: torch.nn.Module, step: int, world: Distributed, log: Callable[[str], None]
    ) -> list[dict]:
        """:meth:`evaluate`, then one line to ``log`` naming every set's loss at every crop length."""
        tic = time.perf_counter()
        records = self.evaluate(model, step, world)
        log(summary_line(records, time.perf_counter() - tic))
        return records

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, step: int, world: Distributed) -> list[dict]:
        """Evaluate ``model`` (the bare module, not a DDP wrapper) on every set and crop length.

        Every rank must call this at the same step (the totals are summed over ranks). The model is
        put back in training mode afterwards.

        Returns:
            One record per (set, crop length), in set order and shortest crop first: ``step``,
            ``set``, ``seq_len``, ``loss`` (mean cross-entropy over the masked bases), ``perplexity``,
            ``accuracy`` (of the masked bases), ``masked_tokens``, ``tokens`` (real bases in the
            crops), ``crops`` and ``tokens_seen`` (crop tokens trained on up to ``step``).
        """
        device = world.device
        model.eval()
        try:
            keys, totals = [], []
            for vset in self.sets:
                for length, (inputs, labels) in vset.crops.items():
                    mine = np.arange(world.rank, len(inputs), world.world_size)
                    keys.append((vset.name, length, len(inputs)))
                    totals.extend(self._totals(model, inputs[mine], labels[mine], length, device))
            summed = world.all_reduce(totals)  # one collective for every set and length
        finally:
            model.train()
        seen = self.config.tokens_seen(step)
        records = []
        for k, (name, length, crops) in enumerate(keys):
            loss_sum, correct, count, real = summed[4 * k : 4 * k + 4]
            loss = loss_sum / count if count else 0.0
            records.append({
                "step": step, "set": name, "seq_len": length, "loss": loss, "perplexity": perplexity(loss),
                "accuracy": correct / count if count else 0.0, "masked_tokens": int(count),
                "tokens": int(real), "crops": crops, "tokens_seen": seen,
            })
        return records

    def _totals(
        self, model: torch.nn.Module, inputs: np.ndarray, labels: np.ndarray, length: int,
        device: torch.device,
    ) -> list[torch.Tensor]:
        """``[loss x count, correct, count, real bases]`` over the crops, as 0-d float64 tensors."""
        totals = torch.zeros(4, dtype=torch.float64, device=device)
        per_pass = max(1, self.pass_tokens // length)
        for first in range(0, len(inputs), per_pass):
            ids = torch.from_numpy(inputs[first : first + per_pass].astype(np.int64)).to(device)
            target = torch.from_numpy(labels[first : first + per_pass].astype(np.int64)).to(device)
            real = ids != PAD_ID
            with autocast_for(device):
                out = model(ids, None if bool(real.all()) else real, labels=target)
            selected = target != IGNORE_INDEX
            count = selected.sum()
            totals[0] += out.loss.double() * count
            totals[1] += (out.logits.argmax(-1)[selected] == target[selected]).sum()
            totals[2] += count
            totals[3] += real.sum()
        return list(totals)


def summary_line(records: list[dict], seconds: float) -> str:
    """One line for the log: ``validation at step S (T tokens seen, X s): loss SET LOSS@L ...; ...``."""
    parts: dict[str, list[str]] = {}
    for r in records:
        parts.setdefault(r["set"], []).append(f"{r['loss']:.4f}@{r['seq_len']}")
    return (f"validation at step {records[0]['step']} ({records[0]['tokens_seen']:,} tokens seen, "
            f"{seconds:.1f} s): loss " + "; ".join(f"{name} {' '.join(v)}" for name, v in parts.items()))
