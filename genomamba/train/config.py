"""The pretraining run configuration: a dataclass of defaults, YAML that holds only per-run values.

Precedence: dataclass defaults < ``--config run.yaml`` < command-line options. Unknown keys,
values of the wrong type and out-of-range values, the model overrides under ``model:`` included,
raise :class:`~genomamba.strict_config.ConfigError` (exit code 2) naming the file the key came
from and its full dotted path (``run.yaml: model.mixer.d_stat: unknown key (did you mean
d_state?)``), all before anything is written. The resolved configuration is written to
``RUN_DIR/run_config.json``; ``--resume`` reads it back, and only the keys in
:data:`CHANGEABLE_ON_RESUME` may differ then (anything else would make the resumed run a
different run).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from genomamba.model.config import ModelConfig, preset
from genomamba.strict_config import ConfigError, from_mapping, reject_unknown
from genomamba.train.schedule import seq_len_at

RUN_CONFIG = "run_config.json"
DEVICES = ("auto", "cpu", "cuda")
#: keys a resumed run may change: where the data lives, how long to go on, where to run, how often to
#: save, and what to validate on (validation never changes what is trained).
CHANGEABLE_ON_RESUME = frozenset(
    {"data", "out", "max_steps", "checkpoint_every", "keep_checkpoints", "device", "verify_shards",
     "val_data", "val_every", "val_tokens", "val_seq_lens"}
)


@dataclass
class PretrainConfig:
    """Every knob of ``genomamba pretrain`` (see docs/training.md for what each does)."""

    data: list[str] = field(default_factory=list)  # token-shard directories
    preset: str = "tiny"  # model preset (genomamba.model.config.preset)
    model: dict = field(default_factory=dict)  # overrides of the preset (e.g. {d_model: 64})
    out: str | None = None  # RUN_DIR
    max_steps: int = 1000  # optimiser steps
    seq_len: int = 1024  # crop length in bases (the final one with sequence-length warm-up)
    tokens_per_step: int | None = None  # None: batch_size * seq_len (no accumulation)
    batch_size: int = 8  # crops per forward pass at seq_len (more, shorter ones during warm-up)
    lr: float = 2e-3
    min_lr_ratio: float = 0.1  # the cosine decays to lr * min_lr_ratio at max_steps
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    mask_prob: float = 0.15
    max_n_fraction: float = 0.5  # windows with more N are skipped
    rc_augment: bool = True  # reverse-complement each crop with probability 1/2
    seq_len_start: int | None = None  # sequence-length warm-up: first crop length (None: off)
    seq_len_warmup_steps: int = 0  # steps over which crops double from seq_len_start to seq_len
    seed: int = 0
    checkpoint_every: int = 500  # steps between checkpoints (also at the end and on SIGTERM/SIGINT)
    keep_checkpoints: int = 2  # newest checkpoints kept (0: all)
    deterministic: bool = False  # deterministic algorithms only (regression tests)
    device: str = "auto"
    verify_shards: bool = False  # check each shard's sha256 against its manifest before training
    val_data: list[str] = field(default_factory=list)  # held-out token-shard directories, one set each
    val_every: int | None = None  # steps between validations (None: checkpoint_every); also at the end
    val_tokens: int = 262_144  # crop tokens each validation evaluates per set and crop length
    val_seq_lens: list[int] = field(default_factory=list)  # crop lengths to validate at ([]: seq_len)

    def __post_init__(self) -> None:
        self.data = [str(d) for d in self.data]
        self.val_data = [str(d) for d in self.val_data]
        self.betas = [float(b) for b in self.betas]
        for name in ("max_steps", "seq_len", "batch_size", "checkpoint_every", "val_tokens"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"must be a positive integer, got {getattr(self, name)!r}", name)
        for name in ("warmup_steps", "seq_len_warmup_steps", "keep_checkpoints", "seed"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ConfigError(f"must be a non-negative integer, got {getattr(self, name)!r}", name)
        if self.tokens_per_step is not None and self.tokens_per_step < self.seq_len:
            raise ConfigError(
                f"must be at least seq_len ({self.seq_len}), got {self.tokens_per_step}", "tokens_per_step"
            )
        if self.seq_len_start is not None and not 1 <= self.seq_len_start <= self.seq_len:
            raise ConfigError(
                f"must lie in [1, seq_len={self.seq_len}], got {self.seq_len_start}", "seq_len_start"
            )
        if not self.lr > 0:
            raise ConfigError(f"must be positive, got {self.lr!r}", "lr")
        for name in ("min_lr_ratio", "mask_prob", "max_n_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"must lie in [0, 1], got {getattr(self, name)!r}", name)
        for name in ("weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise ConfigError(f"must be >= 0, got {getattr(self, name)!r}", name)
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"must be two numbers in [0, 1), got {self.betas!r}", "betas")
        self._check_validation()
        if self.device not in DEVICES:
            raise ConfigError(f"must be one of {', '.join(DEVICES)}, got {self.device!r}", "device")
        self.describe_model()

    def _check_validation(self) -> None:
        if self.val_every is not None and self.val_every < 1:
            raise ConfigError(f"must be a positive integer, got {self.val_every!r}", "val_every")
        if not all(length >= 1 for length in self.val_seq_lens):
            raise ConfigError(f"must be positive integers, got {self.val_seq_lens!r}", "val_seq_lens")
        names = [validation_set_name(d) for d in self.val_data]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:  # a set is named by its directory: two of one name would share their records
            raise ConfigError(
                f"validation sets are named by their directory, and {', '.join(twice)} names more than "
                "one: " + ", ".join(d for d in self.val_data if validation_set_name(d) in twice), "val_data"
            )

    @property
    def validation_every(self) -> int:
        """Steps between validations: ``val_every``, or ``checkpoint_every`` when that is None."""
        return self.val_every or self.checkpoint_every

    @property
    def validation_lengths(self) -> list[int]:
        """The crop lengths validation evaluates at, shortest first: ``val_seq_lens`` or ``[seq_len]``."""
        return sorted(set(self.val_seq_lens)) or [self.seq_len]

    def tokens_seen(self, steps: int) -> int:
        """Crop tokens (padding included) of the first ``steps`` optimiser steps: what a run has
        trained on by then, from the schedule alone (no state needed on resume)."""
        def step_tokens(length: int) -> int:
            return length * sum(self.micro_batch_sizes(length))

        warm = min(steps, self.seq_len_warmup_steps)
        warming = sum(step_tokens(seq_len_at(s, self.seq_len, self.seq_len_start, self.seq_len_warmup_steps))
                      for s in range(warm))
        return warming + (steps - warm) * step_tokens(self.seq_len)

    def describe_model(self) -> ModelConfig:
        """The run's model config: ``preset`` with the ``model`` overrides. Described, not built
        (no torch), so that a bad override is a ConfigError naming ``model.KEY`` before RUN_DIR
        is made.

        Raises:
            ConfigError: an unknown preset; an unknown, mistyped or out-of-range override; a head
                other than mlm.
        """
        base = preset(self.preset)  # an unknown name: an error naming the key preset, not model.preset
        if not isinstance(self.model, dict):
            raise ConfigError(f"must be a mapping of preset overrides, got {self.model!r}", "model")
        try:
            reject_unknown(self.model, ModelConfig)  # first: a non-string key cannot be a keyword below
            model = base.replace(**self.model)
        except ConfigError as exc:
            raise exc.within("model") from None
        if model.head.task != "mlm":
            raise ConfigError(f"pretraining needs an mlm head, got {model.head.task!r}", "model.head.task")
        return model

    @property
    def step_tokens(self) -> int:
        """Tokens per optimiser step (crop slots, padding included)."""
        return self.tokens_per_step or self.batch_size * self.seq_len

    def micro_batch_sizes(self, length: int) -> list[int]:
        """Crops per forward pass ("micro-batch") of one optimiser step at crop length ``length``.

        A step takes ``step_tokens // length`` crops (at least one), in passes of at most
        ``batch_size * seq_len // length`` crops (the memory of one full-length batch); the last
        pass holds the remainder.
        """
        n_crops = max(1, self.step_tokens // length)
        per_pass = max(1, self.batch_size * self.seq_len // length)
        return [min(per_pass, n_crops - first) for first in range(0, n_crops, per_pass)]

    def crop_lengths(self) -> list[int]:
        """Every crop length the sequence-length schedule uses (shortest first; ``seq_len`` last)."""
        lengths = {
            seq_len_at(s, self.seq_len, self.seq_len_start, self.seq_len_warmup_steps)
            for s in range(min(self.seq_len_warmup_steps, self.max_steps))
        }
        return sorted(lengths | {self.seq_len})

    def check_world_size(self, world_size: int) -> None:
        """Check that ``world_size`` processes can share every step's micro-batches evenly.

        The rule: at every crop length of the schedule, the number of micro-batches per step
        (:meth:`micro_batch_sizes`) is a multiple of the number of processes. Each process then
        runs the same number of forward/backward passes, which data-parallel training needs (the
        gradient all-reduce happens after every process's last pass of the step).

        Raises:
            ConfigError: naming the crop length, the counts and a ``tokens_per_step`` that works.
        """
        if world_size <= 1:
            return
        for length in self.crop_lengths():
            sizes = self.micro_batch_sizes(length)
            if len(sizes) % world_size:
                per_pass = self.batch_size * self.seq_len
                fits = -(-max(1, self.step_tokens // per_pass) // world_size) * world_size * per_pass
                raise ConfigError(
                    f"{world_size} processes cannot share the {len(sizes)} micro-batch(es) of an "
                    f"optimiser step at crop length {length} ({sum(sizes)} crops, at most "
                    f"{sizes[0]} per forward pass, tokens_per_step {self.step_tokens}): the number "
                    "of processes must divide the number of micro-batches per step at every crop "
                    f"length; e.g. set tokens_per_step to a multiple of world size x batch_size x "
                    f"seq_len = {world_size * per_pass} (--tokens-per-step {fits})"
                )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PretrainConfig:
        """Build from a mapping (:func:`genomamba.strict_config.from_mapping`): unknown keys,
        values of the wrong type and out-of-range values raise :class:`ConfigError` naming the key."""
        return from_mapping(cls, data)


def validation_set_name(directory: str | Path) -> str:
    """The name of the validation set in ``directory`` (``val_data``): the directory's own name."""
    return Path(directory).resolve().name


def load_yaml(path: str | Path) -> dict:
    """The mapping in a run YAML file (keys checked later by :meth:`PretrainConfig.from_dict`).

    Raises:
        ConfigError: unreadable YAML, or not a mapping at the top level.
    """
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the run config must be a mapping of keys to values")
    return data


def resolve_config(
    yaml_values: dict,
    cli_values: dict,
    saved: dict | None = None,
    *,
    yaml_source: str | None = None,
    saved_source: str | None = None,
) -> PretrainConfig:
    """Merge defaults < YAML < command line; with ``saved`` (a resumed run's ``run_config.json``)
    the saved values are the base and a given value that changes anything outside
    :data:`CHANGEABLE_ON_RESUME` raises :class:`ConfigError`.

    A bad key's error names where its value came from: ``yaml_source`` (the run YAML's name) or
    ``saved_source`` (the saved run config's); a value from the command line names no file.
    """
    cli_given = {k: v for k, v in cli_values.items() if v is not None}
    given = {**yaml_values, **cli_given}
    try:
        config = PretrainConfig.from_dict(given if saved is None else {**saved, **given})
    except ConfigError as exc:
        top = exc.key.split(".")[0] if exc.key else None
        source = None
        if top in yaml_values and top not in cli_given:
            source = yaml_source
        elif saved is not None and top in saved and top not in given:
            source = saved_source
        raise exc.in_source(source) from None
    if saved is None:
        return config
    changed = sorted(k for k, v in given.items() if k not in CHANGEABLE_ON_RESUME and saved.get(k) != v)
    if changed:
        raise ConfigError(
            f"cannot change {', '.join(changed)} when resuming (the run was started with "
            + ", ".join(f"{k}={saved.get(k)!r}" for k in changed)
            + "); start a new run with another --out instead"
        )
    return config


def write_run_config(config: PretrainConfig, run_dir: Path) -> None:
    tmp = run_dir / (RUN_CONFIG + ".tmp")
    tmp.write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(run_dir / RUN_CONFIG)


def read_run_config(run_dir: Path) -> dict | None:
    path = run_dir / RUN_CONFIG
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
