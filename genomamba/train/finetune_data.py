"""Configuration and validated inputs of a fine-tuning run (:mod:`genomamba.train.finetune`).

* :class:`FinetuneConfig` -- every knob of ``genomamba finetune``, checked on construction;
* :func:`load_data` -- reads and checks every input before anything is written: training data,
  validation and test data (files, or the ``split`` column of the training file), the task and
  label map (:mod:`genomamba.tasks.targets`) and the targets;
* :func:`grouped_split` -- the seeded validation split that keeps each group on one side.

numpy only; no torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from genomamba.errors import InputDataError
from genomamba.io.labels import LabelledData, read_labelled
from genomamba.model.config import RC_STRATEGIES, HeadConfig, preset
from genomamba.strict_config import ConfigError
from genomamba.tasks.targets import TaskSpec, encode_targets, infer_task
from genomamba.train.scores import EVAL_BATCH_SIZE

DEFAULT_METRIC = {"binary": "mcc", "multiclass": "mcc", "multilabel": "auroc", "regression": "loss"}
TASK_METRICS = {
    "binary": ("loss", "accuracy", "mcc", "f1", "auroc", "auprc"),
    "multiclass": ("loss", "accuracy", "mcc", "f1", "auroc", "auprc"),
    "multilabel": ("loss", "accuracy", "label_accuracy", "mcc", "f1", "auroc", "auprc"),
    "regression": ("loss", "mse", "rmse", "mae", "r2", "pearson", "spearman"),
}


@dataclass
class FinetuneConfig:
    """Every knob of ``genomamba finetune`` (docs/training.md, "Fine-tuning and evaluation")."""

    train: list[str]  # one CSV/TSV/BED file, or LABEL=FASTA entries
    out: str
    val: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)
    model: str | None = None  # pretrained model directory (backbone kept, new head)
    preset: str | None = None  # or a preset trained from scratch
    genome: str | None = None  # FASTA for BED inputs
    task: str | None = None  # None: inferred from the training labels
    positive: str | None = None  # binary: the positive class
    rc_strategy: str | None = None  # preset only: none | ps | ph (None: the preset's)
    # True: the label belongs to the sequence as given, not to both strands (splice sites, oriented
    # promoters): no RC augmentation, no conjoining (the model is exported as rc_strategy none).
    # False: it holds on both. None: decided from the data (genomamba.train.strand) for
    # classification tasks when neither rc_strategy nor rc_augment is given; else both strands.
    strand_specific: bool | None = None
    freeze_backbone: bool = False  # train the head only (a probe of the backbone's features)
    # LoRA (genomamba.model.lora): the rank of adapters on the Mamba layers' projections, which
    # train with the head while every other weight stays frozen (None: no adapters, train all)
    lora: int | None = None
    lora_alpha: float | None = None  # the update is scaled by lora_alpha / lora (None: 2 * lora)
    lora_dropout: float = 0.0  # dropout on the adapters' input
    pooling: str = "mean"
    dropout: float = 0.1
    val_fraction: float = 0.1  # of the training groups, when there is no validation data
    epochs: int = 10
    max_steps: int | None = None  # stop after this many optimiser steps (None: epochs decide)
    batch_size: int = 32
    eval_batch_size: int = EVAL_BATCH_SIZE
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_fraction: float = 0.1  # of all steps
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    patience: int = 3  # epochs without improvement before stopping (0: never stop early)
    metric: str | None = None  # early-stopping metric (None: DEFAULT_METRIC of the task)
    rc_augment: bool | None = None  # None: on unless the model is PS
    seed: int = 0
    device: str = "auto"
    lenient: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        if (self.model is None) == (self.preset is None):
            raise ConfigError("give exactly one of model (a pretrained model directory) and preset")
        if self.preset is not None:
            preset(self.preset)  # an unknown name is an error naming the key, before any data is read
        if self.rc_strategy is not None and self.model is not None:
            raise ConfigError("applies to --preset only; a pretrained model keeps its own", "rc_strategy")
        if self.rc_strategy not in (None, *RC_STRATEGIES):
            allowed = ", ".join(RC_STRATEGIES)
            raise ConfigError(f"must be one of {allowed}, got {self.rc_strategy!r}", "rc_strategy")
        # the head's options, by the head config's own rules (the same keys: pooling, dropout)
        HeadConfig(task="none", pooling=self.pooling, dropout=self.dropout)
        if self.strand_specific and (self.rc_strategy not in (None, "none") or self.rc_augment):
            raise ConfigError(
                "a strand-specific task uses neither RC augmentation nor an RC-invariant model; drop "
                "--rc-strategy/--rc-augment, or drop --strand-specific if the label holds on both strands",
                "strand_specific",
            )
        if self.freeze_backbone and self.model is None:
            raise ConfigError("probes a pretrained model; give --model, not --preset", "freeze_backbone")
        self._check_lora()
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"must be a positive integer, got {getattr(self, name)!r}", name)
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"must be a positive integer, got {self.max_steps!r}", "max_steps")
        for name in ("patience", "seed", "weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise ConfigError(f"must be >= 0, got {getattr(self, name)!r}", name)
        for name in ("val_fraction", "warmup_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"must lie in [0, 1), got {getattr(self, name)!r}", name)
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"must lie in [0, 1], got {self.min_lr_ratio!r}", "min_lr_ratio")
        if not self.lr > 0:
            raise ConfigError(f"must be positive, got {self.lr!r}", "lr")

    def _check_lora(self) -> None:
        if self.lora is None:
            if self.lora_alpha is not None or self.lora_dropout:
                raise ConfigError("lora_alpha and lora_dropout apply to LoRA only; give --lora RANK")
            return
        if self.freeze_backbone:
            raise ConfigError(
                "freeze_backbone and lora exclude each other: --freeze-backbone trains the head alone, "
                "--lora trains low-rank adapters of the backbone with it; give one"
            )
        if isinstance(self.lora, bool) or not isinstance(self.lora, int) or self.lora < 1:
            raise ConfigError(f"the adapters' rank must be a positive integer, got {self.lora!r}", "lora")
        if self.lora_alpha is not None and not self.lora_alpha > 0:
            raise ConfigError(f"must be positive, got {self.lora_alpha!r}", "lora_alpha")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError(f"must lie in [0, 1), got {self.lora_dropout!r}", "lora_dropout")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> FinetuneConfig:
        return dataclasses.replace(self, **changes)


@dataclass
class Split:
    """One part of the data with its targets."""

    data: LabelledData
    targets: np.ndarray


@dataclass
class Prepared:
    """Validated inputs: the task, training data, and validation/test data when given."""

    spec: TaskSpec
    train: Split
    val: Split | None
    test: Split | None


def load_data(config: FinetuneConfig) -> Prepared:
    """Read and check every input before anything is written (see the module docstring).

    Raises:
        InputDataError: invalid data, labels in validation/test data that training never saw,
            no training rows.
        ValueError: unusable input combinations (usage errors).
    """
    opts = {"genome": config.genome, "lenient": config.lenient}
    given = read_labelled(config.train, **opts)
    parts = {name: given.subset([s == name for s in given.splits]) for name in ("val", "test")}
    train = given.subset([s in (None, "train") for s in given.splits])
    for name, files in (("val", config.val), ("test", config.test)):
        if files:
            if len(parts[name]):
                raise ValueError(
                    f"{given.files[0]} has rows with split '{name}' and --{name} was given as well; "
                    "give the data once"
                )
            parts[name] = read_labelled(files, **opts)
    if not len(train):
        raise InputDataError(f"{given.files[0]}: no training rows (every row has split val or test)")
    spec = infer_task(train, config.task, config.positive)
    metric = config.metric or DEFAULT_METRIC[spec.task]
    if metric not in TASK_METRICS[spec.task]:
        raise ValueError(
            f"metric {metric!r} is not defined for {spec.task}; use one of {TASK_METRICS[spec.task]}"
        )

    def split(data: LabelledData) -> Split | None:
        return Split(data, encode_targets(data, spec)) if len(data) else None

    return Prepared(spec, split(train), split(parts["val"]), split(parts["test"]))


def grouped_split(groups: list[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train_index, val_index)``: whole groups, in a seeded random order, go to validation until
    it holds at least ``fraction`` of the rows; at least one group stays on each side.

    Raises:
        InputDataError: fewer than two groups.
    """
    names, inverse = np.unique(np.asarray(groups, dtype=object), return_inverse=True)
    if len(names) < 2:
        raise InputDataError(
            "cannot hold out a validation set: the training data has a single group; give --val, or a "
            "group column with several groups"
        )
    sizes = np.bincount(inverse)
    order = np.random.default_rng(seed).permutation(len(names))
    taken = np.cumsum(sizes[order])
    count = int(np.searchsorted(taken, fraction * len(groups))) + 1
    val_groups = order[: min(count, len(names) - 1)]
    is_val = np.isin(inverse, val_groups)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)
