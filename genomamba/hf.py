"""Hugging Face transformers classes for genomamba model directories; importing this module registers them.

transformers picks a model's classes by the ``model_type`` in its ``config.json`` ("genomamba",
written by :mod:`genomamba.model_directory`), among the types it has been told about: it has no plugin
mechanism that finds a third-party package by itself. Importing this module tells it, so that
afterwards, without ``trust_remote_code`` (docs/huggingface.md)::

    import genomamba.hf  # registers "genomamba" with the Auto classes
    from transformers import AutoModel, AutoModelForSequenceClassification

    encoder = AutoModel.from_pretrained("runs/mlm/model")  # embeddings, as genomamba.load(...).embed
    clf = AutoModelForSequenceClassification.from_pretrained("ft/model")
    out = clf(**genomamba.hf.tokenize(["ACGTAGGCTA", "TTGACC"]))  # input_ids + attention_mask

The classes wrap :class:`genomamba.model.model.GenomambaModel`. Weights are read by
:func:`genomamba.model_directory.from_pretrained` (safetensors, never pickle, every tensor checked) and
written by :func:`genomamba.model_directory.save_pretrained`, so a model saved from here is a genomamba
model directory again; the state-dict keys are those of ``model.safetensors``. Outputs follow
genomamba, post-hoc reverse-complement conjoining in eval mode included.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genomamba import model_directory
from genomamba.model.backbone import resolve_padding
from genomamba.model.config import HeadConfig, ModelConfig
from genomamba.model.heads import pool
from genomamba.model.lora import _bind_installed_kernels
from genomamba.model.model import GenomambaModel

# transformers >= 5 imports the `kernels` package, which a checkout's kernels/ folder can hide (see there)
_bind_installed_kernels()
_NEEDS = "genomamba.hf needs transformers >= 4.40: pip install 'genomamba[hf]'"
try:
    import transformers
except ImportError as exc:  # an optional dependency: say how to get it
    raise ImportError(_NEEDS) from exc
if tuple(int(part) for part in transformers.__version__.split(".")[:2]) < (4, 40):
    raise ImportError(f"{_NEEDS} (found {transformers.__version__})")
from transformers import (  # noqa: E402
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    PreTrainedModel,
)
from transformers.modeling_outputs import (  # noqa: E402
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    SequenceClassifierOutput,
)

try:  # transformers >= 5 spells it PreTrainedConfig; 4.x has only PretrainedConfig
    from transformers import PreTrainedConfig
except ImportError:
    from transformers import PretrainedConfig as PreTrainedConfig

LOG = logging.getLogger("genomamba.hf")

#: genomamba's sequence problem types <-> transformers' ``problem_type`` (binary has no name there)
_PROBLEM_TYPES = {
    "multiclass": "single_label_classification",
    "multilabel": "multi_label_classification",
    "regression": "regression",
}
#: where ``from_pretrained`` looks for a Hub repository's files
_HUB_OPTIONS = ("cache_dir", "force_download", "local_files_only", "revision", "token")
#: ``from_pretrained`` options that the Auto classes pass along or that mean nothing here (no attention,
#: no sharded or lazy loading: a genomamba model is read whole)
_IGNORED_OPTIONS = frozenset({
    "_from_auto", "_from_pipeline", "_commit_hash", "trust_remote_code", "adapter_kwargs", "code_revision",
    "proxies", "resume_download", "use_auth_token", "low_cpu_mem_usage", "attn_implementation",
})


class GenomambaConfig(PreTrainedConfig):
    """A genomamba ``config.json`` as a transformers config.

    ``architecture`` is :class:`~genomamba.model.config.ModelConfig` as a dict (validated here:
    unknown keys are errors); the other genomamba keys (``format``, ``alphabet``, ``provenance``,
    ...) become attributes as they are. A sequence or token head's label names become ``id2label``
    (``num_labels``); ``hidden_size``, ``num_hidden_layers`` and ``vocab_size`` are read-only views
    of the architecture.
    """

    model_type = model_directory.MODEL_TYPE

    def __init__(self, architecture: dict | None = None, **kwargs: Any):
        model_config = ModelConfig() if architecture is None else ModelConfig.from_dict(architecture)
        head = model_config.head
        if head.task in ("sequence", "token") and "id2label" not in kwargs and "num_labels" not in kwargs:
            names = head.labels or [f"LABEL_{i}" for i in range(head.num_labels)]
            kwargs["id2label"] = dict(enumerate(names))
            kwargs["label2id"] = {name: i for i, name in enumerate(names)}
        if head.task == "sequence":
            kwargs.setdefault("problem_type", _PROBLEM_TYPES.get(head.problem_type))
        super().__init__(**kwargs)
        self.architecture = model_config.to_dict()

    def genomamba_config(self) -> ModelConfig:
        """The architecture as genomamba's :class:`~genomamba.model.config.ModelConfig`."""
        return ModelConfig.from_dict(self.architecture)

    @property
    def hidden_size(self) -> int:
        return self.architecture["d_model"]

    @property
    def num_hidden_layers(self) -> int:
        return self.architecture["n_layer"]

    @property
    def vocab_size(self) -> int:
        return self.architecture["vocab_size"]

    @classmethod
    def from_model_directory(cls, directory: str | os.PathLike) -> GenomambaConfig:
        """The config of a model directory, read and checked by :func:`genomamba.model_directory.read_config`
        (so directories written before ``model_type`` existed load too)."""
        return cls(**model_directory.read_config(directory), name_or_path=str(directory))


class GenomambaPreTrainedModel(PreTrainedModel):
    """What the three model classes share: loading, saving, and the genomamba model they run."""

    config_class = GenomambaConfig
    base_model_prefix = "backbone"
    main_input_name = "input_ids"

    def __init__(self, config: GenomambaConfig, genomamba_model: GenomambaModel | None = None):
        super().__init__(config)
        if genomamba_model is None:  # a fresh model (from_config): genomamba initialises it
            genomamba_model = GenomambaModel(config.genomamba_config().replace(head=self._head_for(config)))
        # The genomamba model's backbone and head become this module's children under their own
        # names, so this model's state dict has exactly the keys of model.safetensors (a state dict
        # saved from here, e.g. by the Trainer, fits either class). The GenomambaModel that runs them
        # stays outside the module tree: as a child it would put a prefix on every key.
        self.backbone = genomamba_model.backbone
        self.head = genomamba_model.head
        self.__dict__["_genomamba_model"] = genomamba_model
        config.architecture = genomamba_model.config.to_dict()
        self.post_init()

    @property
    def genomamba_model(self) -> GenomambaModel:
        """The :class:`~genomamba.model.model.GenomambaModel` this module runs (same parameters)."""
        model = self.__dict__["_genomamba_model"]
        # what runs is this module's children and mode, also after a library swapped a child
        # (an adapter wrapping ``head``, say) or train()/eval() was called here
        model.backbone = self.backbone
        if self.head is not None:
            model.head = self.head
        model.training = self.training
        return model

    def _init_weights(self, module: torch.nn.Module) -> None:
        """Nothing: genomamba initialises its own modules (its ``init_weights``) or loads them."""

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.backbone.embedding

    @classmethod
    def _head_for(cls, config: GenomambaConfig, ignore_mismatched_sizes: bool = False) -> HeadConfig:
        """The head this class puts on the backbone, given the stored config."""
        raise NotImplementedError

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *model_args: Any,
        config: GenomambaConfig | None = None,
        **kwargs: Any,
    ) -> GenomambaPreTrainedModel:
        """Load a genomamba model directory (or a Hub repository holding one), in eval mode.

        Reads it with :func:`genomamba.model_directory.from_pretrained`: safetensors only, every tensor
        checked by name and shape. Options as in transformers: ``dtype`` (or ``torch_dtype``;
        ``"auto"`` keeps the stored one), ``device_map`` (one device: ``"cpu"``, ``"cuda:0"``, an
        index or ``"auto"``), ``ignore_mismatched_sizes``, the Hub options (``revision``,
        ``cache_dir``, ``token``, ``local_files_only``, ``force_download``, ``subfolder``), and
        config attributes such as ``num_labels``. A head that the directory does not hold starts
        fresh (a warning says so).

        Raises:
            ModelDirectoryError: not a complete, valid model directory.
            ValueError: a head that cannot be loaded (see the class); a device map over several devices.
            TypeError: an option that does not apply to genomamba models.
        """
        if model_args:
            raise TypeError(f"{cls.__name__}.from_pretrained takes no positional model arguments")
        directory = _model_directory(pretrained_model_name_or_path, kwargs)
        dtype, legacy_dtype = kwargs.pop("dtype", None), kwargs.pop("torch_dtype", None)
        dtype = _torch_dtype(dtype if dtype is not None else legacy_dtype)
        device = _single_device(kwargs.pop("device_map", None))
        ignore_mismatched_sizes = bool(kwargs.pop("ignore_mismatched_sizes", False))
        if kwargs.pop("use_safetensors", None) is False:
            raise ValueError("genomamba model directories hold safetensors weights only")
        if config is None:
            config = GenomambaConfig.from_model_directory(directory)
        elif not isinstance(config, GenomambaConfig):
            raise TypeError(f"config must be a GenomambaConfig, got {type(config).__name__}")
        for key in [k for k in kwargs if k not in _IGNORED_OPTIONS and hasattr(config, k)]:
            setattr(config, key, kwargs.pop(key))  # e.g. num_labels=3, as transformers does
        unknown = sorted(set(kwargs) - _IGNORED_OPTIONS)
        if unknown:
            raise TypeError(f"{cls.__name__}.from_pretrained got option(s) that do not apply: "
                            f"{', '.join(unknown)}")

        head = cls._head_for(config, ignore_mismatched_sizes)
        stored = config.genomamba_config().head
        model = model_directory.from_pretrained(directory, head=head, device=device, dtype=dtype)
        if head.task != "none" and head != stored:
            LOG.warning("%s: the %s head on %s is new (the directory's head is %r); train it before use",
                        cls.__name__, head.task, directory, stored.task)
        wrapper = cls(config, model)
        wrapper.name_or_path = str(pretrained_model_name_or_path)
        return wrapper.eval()

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        is_main_process: bool = True,
        state_dict: dict[str, torch.Tensor] | None = None,
        push_to_hub: bool = False,
        **kwargs: Any,
    ) -> None:
        """Write a genomamba model directory (``config.json``, ``model.safetensors``, ``README.md``)
        with :func:`genomamba.model_directory.save_pretrained`, keeping other files in the directory.

        ``state_dict`` (this model's keys) is saved instead of the live weights, as the Trainer
        asks. Options for transformers' own format (``max_shard_size``, ``safe_serialization``,
        ``variant``, ...) do not apply and are ignored. The provenance of the loaded directory is
        kept, with the transformers version that wrote it.

        Raises:
            ValueError: ``push_to_hub``: upload the directory with ``huggingface_hub.upload_folder``,
                which keeps genomamba's model card.
        """
        if push_to_hub:
            raise ValueError("save the directory, then upload it with huggingface_hub.upload_folder "
                             "(transformers' push_to_hub replaces genomamba's model card)")
        if not is_main_process:
            return
        model = self.genomamba_model
        if state_dict is not None:
            model = GenomambaModel(model.config)
            model.load_state_dict(state_dict)
        provenance = dict(getattr(self.config, "provenance", None) or {})
        data_sha256 = provenance.pop("training_data_manifest_sha256", None)
        for written_now in ("genomamba_version", "git_commit", "created_utc", "torch_version"):
            provenance.pop(written_now, None)
        provenance["transformers"] = {"version": transformers.__version__, "class": type(self).__name__}
        model_directory.save_pretrained(model, save_directory, data_manifest_sha256=data_sha256,
                                   provenance=provenance, into_existing=True)

    def _return(self, output, return_dict: bool | None):
        as_dict = self.config.return_dict if return_dict is None else return_dict
        return output if as_dict else output.to_tuple()


class GenomambaBaseModel(GenomambaPreTrainedModel):
    """The backbone alone (``AutoModel``): per-base and mean-pooled embeddings; any head in the
    directory is left out."""

    @classmethod
    def _head_for(cls, config: GenomambaConfig, ignore_mismatched_sizes: bool = False) -> HeadConfig:
        return HeadConfig(task="none")

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        """``input_ids`` (batch, L) right-padded, ``attention_mask`` (batch, L) ones then zeros."""
        mask, lengths = resolve_padding(input_ids, attention_mask)
        hidden = self.genomamba_model.embed(input_ids, attention_mask, pooling=None)
        pooled = pool(hidden, mask, lengths, "mean")
        output = BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=pooled)
        return self._return(output, return_dict)


class GenomambaForMaskedLM(GenomambaPreTrainedModel):
    """The backbone and its masked-LM head (``AutoModelForMaskedLM``); the directory must hold one."""

    @classmethod
    def _head_for(cls, config: GenomambaConfig, ignore_mismatched_sizes: bool = False) -> HeadConfig:
        stored = config.genomamba_config().head
        if stored.task != "mlm":
            raise ValueError(
                f"{config.name_or_path or 'this model'} has a {stored.task!r} head, not a masked-LM head "
                "(a fine-tuned model): load it with AutoModel, or with the Auto class of its task"
            )
        return stored

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> MaskedLMOutput | tuple:
        """Logits (batch, L, vocab); with ``labels`` (batch, L) token ids, -100 where not counted,
        the masked-LM loss (padded positions never count)."""
        out = self.genomamba_model(input_ids, attention_mask, labels=labels)
        return self._return(MaskedLMOutput(loss=out.loss, logits=out.logits), return_dict)


class GenomambaForSequenceClassification(GenomambaPreTrainedModel):
    """The backbone and a sequence head (``AutoModelForSequenceClassification``).

    A fine-tuned directory keeps its head. Any other directory (a pretrained MLM model) gets a fresh
    head of ``num_labels`` outputs: ``problem_type`` ``regression`` or ``num_labels=1`` ->
    regression; ``multi_label_classification`` -> multilabel; otherwise multiclass (the default
    ``num_labels`` is 2). Asking for another head than a fine-tuned directory holds is an error
    unless ``ignore_mismatched_sizes=True``.
    """

    @classmethod
    def _head_for(cls, config: GenomambaConfig, ignore_mismatched_sizes: bool = False) -> HeadConfig:
        stored = config.genomamba_config().head
        n = config.num_labels
        if config.problem_type == "regression" or (config.problem_type is None and n == 1):
            problem = "binary" if stored.problem_type == "binary" and n == 1 else "regression"
        elif config.problem_type == "multi_label_classification":
            problem = "multilabel"
        else:
            problem = "multiclass"
        if stored.task == "sequence" and stored.num_labels == n and stored.problem_type == problem:
            return stored
        if stored.task == "sequence" and not ignore_mismatched_sizes:
            raise ValueError(
                f"{config.name_or_path or 'this model'} has a {stored.problem_type} head with "
                f"{stored.num_labels} output(s), not {problem} with {n}: pass ignore_mismatched_sizes=True "
                "for a fresh head"
            )
        names = [config.id2label[i] for i in range(n)]
        default_names = names == [f"LABEL_{i}" for i in range(n)]
        return HeadConfig(task="sequence", problem_type=problem, num_labels=n,
                          labels=None if default_names else names)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple:
        """Logits (batch, num_labels); with ``labels`` the head's loss: class ids (batch,) for
        multiclass, 0/1 (batch,) for binary, (batch, num_labels) 0/1 or values for multilabel and
        regression."""
        out = self.genomamba_model(input_ids, attention_mask, labels=labels)
        return self._return(SequenceClassifierOutput(loss=out.loss, logits=out.logits), return_dict)


def tokenize(
    sequences: Iterable[str | bytes | np.ndarray] | str, *, lenient: bool = False
) -> dict[str, torch.Tensor]:
    """The model inputs for DNA strings: ``{"input_ids": (n, L) long, "attention_mask": (n, L) long}``,
    right-padded to the longest sequence, in genomamba's alphabet (any case; IUPAC codes read as N).

    Raises:
        InputDataError: an empty sequence or an invalid character, naming sequence and position
            (``lenient=True`` reads invalid characters as N).
    """
    from genomamba.api import encode_sequences
    from genomamba.runtime.batching import pad_batch

    input_ids, mask = pad_batch(encode_sequences(sequences, lenient=lenient))
    attention_mask = torch.ones_like(input_ids) if mask is None else mask.long()
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def register() -> None:
    """Tell transformers' Auto classes about ``model_type`` "genomamba" (done when this module is
    imported; calling it again changes nothing)."""
    AutoConfig.register(model_directory.MODEL_TYPE, GenomambaConfig, exist_ok=True)
    for auto, model_class in (
        (AutoModel, GenomambaBaseModel),
        (AutoModelForMaskedLM, GenomambaForMaskedLM),
        (AutoModelForSequenceClassification, GenomambaForSequenceClassification),
    ):
        auto.register(GenomambaConfig, model_class, exist_ok=True)


# -- helpers --------------------------------------------------------------------------------------
def _model_directory(name: str | os.PathLike, options: dict[str, Any]) -> Path:
    """A local model directory, or the files of a Hub repository holding one (downloaded once into
    the Hugging Face cache); pops the Hub options from ``options``."""
    hub = {key: options.pop(key, None) for key in _HUB_OPTIONS}
    hub = {key: value for key, value in hub.items() if value not in (None, False)}
    subfolder = options.pop("subfolder", "") or ""
    local = Path(name) / subfolder
    if local.is_dir():
        return local
    from huggingface_hub import snapshot_download

    prefix = f"{subfolder}/" if subfolder else ""
    names = (model_directory.CONFIG_FILE, model_directory.WEIGHTS_FILE, model_directory.CARD_FILE)
    files = [prefix + f for f in names]
    try:
        root = snapshot_download(str(name), allow_patterns=files, **hub)
    except ValueError as exc:  # not a repository id either (huggingface_hub's validation error)
        raise model_directory.ModelDirectoryError(
            f"{name} is neither a model directory nor a Hub repository id"
        ) from exc
    return Path(root) / subfolder


def _torch_dtype(value: str | torch.dtype | None) -> torch.dtype | None:
    """None keeps the stored dtype ("auto" too); else a floating-point torch dtype or its name."""
    if value is None or value == "auto":
        return None
    dtype = getattr(torch, value, None) if isinstance(value, str) else value
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch dtype or 'auto', got {value!r}")
    return dtype


def _single_device(device_map: str | int | torch.device | dict | None) -> torch.device:
    """The one device a ``device_map`` names (a genomamba model is not split across devices)."""
    if device_map is None:
        return torch.device("cpu")
    if isinstance(device_map, dict):
        devices = set(device_map.values())
        if len(devices) != 1:
            raise ValueError("a genomamba model runs on one device: pass device_map='cuda:0' (or 'cpu')")
        (device_map,) = devices
    if device_map == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device_map, int):
        return torch.device("cuda", device_map)
    return torch.device(device_map)


register()
