"""Model configuration: dataclasses with defaults, named presets, strict dict round trip.

No torch here, so the command line can list presets and validate configs without importing it.
A config is what ``config.json`` of a model directory stores under ``"architecture"``
(see :mod:`genomamba.model_directory`); :func:`ModelConfig.from_dict` rejects unknown keys and values of
the wrong type (:mod:`genomamba.strict_config`) so a typo in a run file or a file from a newer
genomamba fails loudly instead of being ignored. Errors name the key relative to the model config
(``mixer.d_state``); a config holding this one under a name adds it (``model.mixer.d_state``).

Glossary (sizes as Mamba names them):

* ``d_model`` -- width of the residual stream of one strand. The parameter-sharing RC model
  (``rc_strategy="ps"``) carries two strands, so its hidden states are ``2 * d_model`` wide,
  but its parameters are those of a ``d_model`` model.
* ``d_inner = expand * d_model`` -- width of the scan; ``d_state`` -- N, the state size per
  channel; ``dt_rank`` -- rank of the input-dependent step size projection.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from genomamba.alphabet import VOCAB_SIZE
from genomamba.strict_config import ConfigError, from_mapping

RC_STRATEGIES = ("none", "ps", "ph")
COMBINE_MODES = ("sum", "product")
HEAD_TASKS = ("none", "mlm", "sequence", "token")
SEQUENCE_PROBLEMS = ("binary", "multiclass", "multilabel", "regression")
#: parameter-free poolings (heads and embeddings)
FIXED_POOLINGS = ("mean", "max", "first", "last", "center")
#: what a sequence head can pool with: the fixed ones, learned attention over positions, and
#: ``binned`` (the mean of each of ``head.bins`` equal stretches, side by side: where along the
#: sequence something lies reaches the classifier)
POOLINGS = FIXED_POOLINGS + ("attention", "binned")
DT_INITS = ("random", "constant")
#: How the state matrix A is parameterised: ``full`` learns A per (channel, state), as Mamba;
#: ``ladder`` learns one rate per channel, A[d, n] = -a_d (n + 1) (S4D-real's ladder, kept);
#: ``scalar`` learns one rate per channel for all its states, A[d, n] = -a_d (Mamba-2's scalar A, per
#: channel rather than per head)
DECAYS = ("full", "ladder", "scalar")


def _choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"must be one of {', '.join(map(repr, allowed))}, got {value!r}", name)


def _positive(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"must be a positive integer, got {value!r}", name)


@dataclass
class MixerConfig:
    """One Mamba mixer (both directions of a BiMamba mixer share these sizes)."""

    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int | str = "auto"  # "auto" = ceil(d_model / 16), as Mamba
    dt_min: float = 0.001
    dt_max: float = 0.1
    dt_init: str = "random"  # dt_proj weight: uniform(+-std) or constant std
    dt_scale: float = 1.0
    dt_init_floor: float = 1e-4
    conv_bias: bool = True
    proj_bias: bool = False  # bias on in_proj / out_proj
    # "ladder" (A[d, n] = -a_d (n + 1)) and "scalar" (A[d, n] = -a_d): exp(dt A) needs one exponential
    # per (position, channel) instead of one per (position, channel, state): the Triton scan's cheaper
    # path (ops.selective_scan's decay)
    decay: str = "full"

    def __post_init__(self) -> None:
        for name in ("d_state", "d_conv", "expand"):
            _positive(name, getattr(self, name))
        _choice("decay", self.decay, DECAYS)
        if self.dt_rank != "auto":
            _positive("dt_rank", self.dt_rank)
        _choice("dt_init", self.dt_init, DT_INITS)
        if not 0 < self.dt_min <= self.dt_max:
            raise ConfigError(f"need 0 < dt_min <= dt_max, got {self.dt_min} and {self.dt_max}", "dt_min")

    def resolved_dt_rank(self, d_model: int) -> int:
        return math.ceil(d_model / 16) if self.dt_rank == "auto" else int(self.dt_rank)


@dataclass
class HeadConfig:
    """What sits on top of the backbone.

    ``task``: ``"none"`` (embeddings only), ``"mlm"`` (masked-LM logits over the vocabulary),
    ``"sequence"`` (one prediction per sequence, pooled), ``"token"`` (one per base).
    ``problem_type`` (sequence task): binary (one logit, BCE), multiclass (softmax, CE),
    multilabel (one logit per label, BCE), regression (``num_labels`` outputs, MSE).
    Token classification is always multiclass.
    """

    task: str = "mlm"
    problem_type: str | None = None
    num_labels: int = 0
    pooling: str = "mean"
    bins: int = 8  # pooling "binned": stretches of each sequence, each pooled by its mean
    dropout: float = 0.0
    tie_embeddings: bool = True  # mlm: decoder weight is the embedding matrix
    labels: list[str] | None = None  # label names, index = class id (the label map)

    def __post_init__(self) -> None:
        _choice("task", self.task, HEAD_TASKS)
        _choice("pooling", self.pooling, POOLINGS)
        _positive("bins", self.bins)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"must lie in [0, 1), got {self.dropout!r}", "dropout")
        if self.task == "sequence":
            _choice("problem_type", self.problem_type, SEQUENCE_PROBLEMS)
            if self.problem_type == "binary" and self.num_labels in (0, 1):
                self.num_labels = 1
            if self.problem_type == "binary" and self.num_labels != 1:
                raise ConfigError("a binary head has exactly one output (num_labels=1)", "num_labels")
            if self.problem_type == "multiclass" and self.num_labels < 2:
                raise ConfigError("a multiclass head needs num_labels >= 2", "num_labels")
        elif self.task == "token":
            if self.problem_type not in (None, "multiclass"):
                raise ConfigError("token classification is multiclass; must be 'multiclass'", "problem_type")
            self.problem_type = "multiclass"
            if self.num_labels < 2:
                raise ConfigError("a token classification head needs num_labels >= 2", "num_labels")
        elif self.problem_type is not None:
            raise ConfigError(f"applies to sequence/token heads, not task {self.task!r}", "problem_type")
        if self.task in ("sequence", "token"):
            _positive("num_labels", self.num_labels)
        if self.labels is not None:
            if self.task not in ("sequence", "token") or len(self.labels) != self.num_labels:
                raise ConfigError(
                    f"needs a sequence/token head with num_labels={len(self.labels)} entries", "labels"
                )
            self.labels = [str(label) for label in self.labels]

    @classmethod
    def from_dict(cls, data: dict) -> HeadConfig:
        """Build from a plain dict; unknown keys and bad values raise :class:`ConfigError` naming
        ``head.KEY``."""
        return from_mapping(cls, data, "head")


@dataclass
class ModelConfig:
    """The whole architecture. Defaults are the ``small-1k`` sizes."""

    d_model: int = 256
    n_layer: int = 4
    vocab_size: int = VOCAB_SIZE
    mixer: MixerConfig = field(default_factory=MixerConfig)
    bidirectional: bool = True
    tie_projections: bool = True  # in_proj and out_proj shared by the two directions (Caduceus)
    combine: str = "sum"  # how the two directions' outputs meet
    rc_strategy: str = "ph"  # none | ps (parameter sharing) | ph (post-hoc conjoining)
    norm_eps: float = 1e-5
    residual_in_fp32: bool = True
    gradient_checkpointing: bool = False
    initializer_range: float = 0.02  # std of the embedding (and classifier) weights
    rescale_prenorm_residual: bool = True  # out_proj /= sqrt(n_layer), as Mamba / GPT-2
    max_length: int | None = None  # the window length the preset is sized for (advisory)
    head: HeadConfig = field(default_factory=HeadConfig)
    preset: str | None = None  # name of the preset it started from, for model cards

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layer", "vocab_size"):
            _positive(name, getattr(self, name))
        if self.vocab_size < VOCAB_SIZE:
            raise ConfigError(f"must cover the {VOCAB_SIZE} alphabet ids, got {self.vocab_size}",
                              "vocab_size")
        _choice("combine", self.combine, COMBINE_MODES)
        _choice("rc_strategy", self.rc_strategy, RC_STRATEGIES)
        if self.rc_strategy == "ps" and not self.bidirectional:
            raise ConfigError("'ps' needs bidirectional=True (both strands scan both ways)", "rc_strategy")
        if self.max_length is not None:
            _positive("max_length", self.max_length)

    @property
    def d_inner(self) -> int:
        return self.mixer.expand * self.d_model

    @property
    def n_strands(self) -> int:
        """Strands carried in the hidden state: 2 for the parameter-sharing RC model."""
        return 2 if self.rc_strategy == "ps" else 1

    @property
    def hidden_size(self) -> int:
        """Width of the backbone's output: ``n_strands * d_model``."""
        return self.n_strands * self.d_model

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Build from a plain dict (``config.json`` or YAML); unknown keys, values of the wrong
        type and out-of-range values raise :class:`ConfigError` naming the key (``mixer.d_state``)."""
        return from_mapping(cls, data)

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with top-level fields changed; ``mixer``/``head`` may be given as dicts of changes."""
        data = self.to_dict()
        for key, value in changes.items():
            if key in ("mixer", "head") and isinstance(value, dict):
                data[key] = {**data[key], **value}  # from_dict names an unknown key in value
            elif dataclasses.is_dataclass(value):
                data[key] = dataclasses.asdict(value)
            else:
                data[key] = value
        return ModelConfig.from_dict(data)


# Presets. Parameter counts (docs/model.md) are computed by tests/model/test_config.py.
_PRESETS: dict[str, dict] = {
    # CPU demos and tests: seconds per step on a laptop.
    "tiny": {"d_model": 32, "n_layer": 2, "mixer": {"d_state": 8}, "max_length": 1024},
    # Caduceus 1k sizes (d_model 256, 4 layers).
    "small-1k": {"d_model": 256, "n_layer": 4, "max_length": 1024},
    # Caduceus-131k sizes (d_model 256, 16 layers).
    "base-131k": {"d_model": 256, "n_layer": 16, "max_length": 131_072, "gradient_checkpointing": True},
    # 2^20-base windows at batch 1 on one 80 GB GPU with per-block checkpointing: the widest
    # 16-layer model measured to fit with room to spare (57 GiB peak on an H100, docs/model.md).
    "long-1m": {"d_model": 384, "n_layer": 16, "max_length": 1 << 20, "gradient_checkpointing": True},
    # The same sizes with a structured A (MixerConfig.decay): candidates against the Mamba-1 A,
    # compared at equal tokens (docs/model.md, "Structured decay").
    "small-1k-ladder": {"d_model": 256, "n_layer": 4, "max_length": 1024, "mixer": {"decay": "ladder"}},
    "base-131k-ladder": {"d_model": 256, "n_layer": 16, "max_length": 131_072, "gradient_checkpointing": True,
                         "mixer": {"decay": "ladder"}},
    "small-1k-scalar": {"d_model": 256, "n_layer": 4, "max_length": 1024, "mixer": {"decay": "scalar"}},
    "base-131k-scalar": {"d_model": 256, "n_layer": 16, "max_length": 131_072, "gradient_checkpointing": True,
                         "mixer": {"decay": "scalar"}},
}
PRESET_NAMES = tuple(_PRESETS)


def preset(name: str, **overrides: Any) -> ModelConfig:
    """The named preset, with optional overrides (``mixer``/``head`` as dicts of changes).

    Raises:
        ConfigError: unknown preset name or override key.
    """
    if name not in _PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(PRESET_NAMES)}", "preset")
    base = ModelConfig.from_dict({**_PRESETS[name], "preset": name})
    return base.replace(**overrides) if overrides else base
