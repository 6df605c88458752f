"""The model directory: the only module that reads or writes model files.

Layout of a model directory (format version 1)::

    config.json        {"format": "genomamba-model", "format_version": 1, "model_type": "genomamba",
                        "architecture": ModelConfig as a dict (head and label map included),
                        "alphabet": {"version", "tokens"}, "num_parameters": int,
                        "tied_tensors": {alias: stored name},
                        "provenance": {"genomamba_version", "git_commit", "created_utc",
                                       "torch_version", "training_data_manifest_sha256", ...}}
    model.safetensors  every tensor of the state dict once, by its state-dict name
    README.md          a model card written from config.json, with Hugging Face Hub metadata
                       (YAML front matter: licence, library, tags, pipeline tag, datasets, metrics)

``model_type`` lets Hugging Face transformers pick genomamba's classes for the directory once
:mod:`genomamba.hf` has registered them; genomamba itself does not need it, so directories
written before it existed load unchanged.

Loading reads JSON and safetensors only (no pickle, no code from the directory). It fails with a
:class:`ModelDirectoryError` (exit code 65) that names what is wrong: missing or unexpected tensors,
shape mismatches, a newer format version, another alphabet version, unknown config keys. Saving
writes into a temporary sibling directory and renames it into place, so a reader never sees a
half-written model and a failed save leaves nothing behind.

An adapter directory (:func:`save_adapter`, :func:`load_adapter`) holds LoRA adapters and the head
trained with them, in PEFT's format: small to share, and applied to the base model it was trained
on (checked by the sha256 of its weights) it gives the fine-tuned model again.

Every function that reads a model directory also takes the name of a model genomamba ships
(``from_pretrained("genomamba-small-1k")``): :func:`resolve_model` (an existing path wins, then a
registered name, verified against its sha256 pins; :mod:`genomamba.pretrained`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from genomamba import __version__
from genomamba.alphabet import ALPHABET_VERSION, alphabet_description
from genomamba.errors import InputDataError
from genomamba.io.atomic import move_directory_into_place, staged_directory
from genomamba.model.config import HeadConfig, ModelConfig
from genomamba.model.model import GenomambaModel
from genomamba.model_card import card_metadata, model_card  # noqa: F401 (card_metadata: re-exported)
from genomamba.pretrained import ShippedModelError
from genomamba.pretrained import resolve as _resolve_registered
from genomamba.strict_config import ConfigError

FORMAT_NAME = "genomamba-model"
FORMAT_VERSION = 1
#: ``model_type`` in config.json: the name transformers' Auto classes know genomamba by
MODEL_TYPE = "genomamba"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
_HEAD_PREFIX = "head."


class ModelDirectoryError(InputDataError):
    """A model directory that cannot be loaded (or written); the message says why."""


def resolve_model(model: str | os.PathLike) -> Path:
    """The model directory that ``model`` names: an existing path as it is; else the folder of the
    shipped model of that name (:mod:`genomamba.pretrained`), every file checked against its
    sha256 pin; else ``model`` as a path (whose loading then fails as a missing directory does).

    Raises:
        ModelDirectoryError: a registered name whose weights this build does not ship, or a
            shipped file that is missing or differs from its pin (the message names the model).
    """
    try:
        return _resolve_registered(model)
    except ShippedModelError as exc:
        raise ModelDirectoryError(str(exc)) from exc


def save_pretrained(
    model: GenomambaModel,
    directory: str | os.PathLike,
    *,
    data_manifest_sha256: str | None = None,
    provenance: dict[str, Any] | None = None,
    overwrite: bool = False,
    into_existing: bool = False,
    weights_dtype: torch.dtype | None = None,
) -> Path:
    """Write ``model`` as a model directory, atomically.

    Args:
        model: the model; its ``config`` is stored as the architecture.
        directory: target path (created; its parent too).
        data_manifest_sha256: sha256 of the training data manifest, recorded in provenance.
        provenance: extra JSON-serialisable provenance entries (e.g. run id, steps).
        overwrite: replace an existing directory (the old one is removed only after the new one
            is in place).
        into_existing: write into an existing directory, replacing only ``config.json``,
            ``model.safetensors`` and ``README.md`` and leaving its other files alone (for
            frameworks that keep training state beside the model). The three files are written
            completely first, then renamed into place one by one, ``config.json`` last.
        weights_dtype: store the weight matrices in this dtype (``torch.bfloat16`` for a shipped
            model: half the size); vectors and ``A_log`` stay as they are (see
            :func:`_stored_tensor`), and provenance records it. Loading casts back to the model's
            dtype (float32 unless asked otherwise). None: every tensor as the model holds it.

    Returns:
        The target path.

    Raises:
        FileExistsError: the target exists and ``overwrite`` is False.
    """
    target = Path(directory)
    if target.exists() and not (overwrite or into_existing):
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a directory")
    tensors, tied = _tensors_to_save(model)
    provenance = dict(provenance or {})
    if weights_dtype is not None:
        tensors = {name: _stored_tensor(name, t, weights_dtype) for name, t in tensors.items()}
        provenance["weights_dtype"] = f"{str(weights_dtype).removeprefix('torch.')} ({_KEPT_TEXT} float32)"
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_type": MODEL_TYPE,
        "architecture": model.config.to_dict(),
        "alphabet": alphabet_description(),
        "num_parameters": model.num_parameters(),
        "tied_tensors": tied,
        "provenance": _provenance(data_manifest_sha256, provenance),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    with staged_directory(target) as tmp:  # named with the pid: a killed run's is recognised and removed
        _write_tensors(tmp / WEIGHTS_FILE, tensors, {"format": "pt", FORMAT_NAME: str(FORMAT_VERSION)})
        _write_text(tmp / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True) + "\n")
        _write_text(tmp / CARD_FILE, model_card(config))
        if target.exists() and into_existing:
            for name in (WEIGHTS_FILE, CARD_FILE, CONFIG_FILE):  # config.json names a model: last
                os.replace(tmp / name, target / name)
        else:
            move_directory_into_place(tmp, target)
    return target


def read_config(directory: str | os.PathLike) -> dict:
    """The validated ``config.json`` of a model directory, or of a shipped model named
    (:func:`resolve_model`); format, version and alphabet checked.

    Raises:
        ModelDirectoryError: missing/unparsable file, another format, a newer format version, or
            another alphabet version; see :func:`resolve_model`.
    """
    directory = resolve_model(directory)
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise ModelDirectoryError(f"{directory} is not a genomamba model directory: {CONFIG_FILE} is missing")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelDirectoryError(f"{path} is not valid JSON: {exc}") from exc
    found = config.get("format") if isinstance(config, dict) else None
    if found != FORMAT_NAME:
        raise ModelDirectoryError(f"{path} does not describe a {FORMAT_NAME} (format={found!r})")
    version = config.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelDirectoryError(f"{path}: format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise ModelDirectoryError(
            f"{path} has model format version {version}, but genomamba {__version__} reads versions up to "
            f"{FORMAT_VERSION}; upgrade genomamba to load it"
        )
    alphabet = config.get("alphabet", {})
    if alphabet.get("version") != ALPHABET_VERSION:
        raise ModelDirectoryError(
            f"{path} was trained with alphabet version {alphabet.get('version')!r}; this genomamba uses "
            f"alphabet version {ALPHABET_VERSION} (token ids differ, the model cannot be used as is)"
        )
    return config


def from_pretrained(
    directory: str | os.PathLike,
    *,
    head: HeadConfig | dict | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    **overrides: Any,
) -> GenomambaModel:
    """Load a model directory written by :func:`save_pretrained`.

    Args:
        directory: the model directory, or the name of a shipped model (:func:`resolve_model`).
        head: a different head (e.g. a classifier on a pretrained MLM backbone). Its tensors start
            fresh; the backbone must still match exactly. None keeps the stored head.
        device, dtype: where and in which dtype to put the parameters (default: as stored, on CPU).
        overrides: other config fields to change (e.g. ``gradient_checkpointing=True``); tensor
            shapes must still match.

    Returns:
        The model in eval mode.

    Raises:
        ModelDirectoryError: see :func:`read_config`; unknown or invalid config keys; a missing or
            unreadable weights file; missing, unexpected or mis-shaped tensors (named).
    """
    directory = resolve_model(directory)
    config_json = read_config(directory)
    try:
        config = ModelConfig.from_dict(config_json.get("architecture", {}))
        if head is not None:
            overrides["head"] = HeadConfig.from_dict(head) if isinstance(head, dict) else head
        if overrides:
            config = config.replace(**overrides)
    except ConfigError as exc:
        raise ModelDirectoryError(f"{directory / CONFIG_FILE}: {exc}") from exc
    fresh_head = head is not None and config.head != ModelConfig.from_dict(config_json["architecture"]).head

    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelDirectoryError(f"{directory} is not a complete model directory: {WEIGHTS_FILE} is missing")
    try:
        stored = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ModelDirectoryError(f"cannot read {weights}: {exc}") from exc

    model = GenomambaModel(config)
    expected, tied = _tensors_to_save(model)
    if fresh_head:
        expected = {k: v for k, v in expected.items() if not k.startswith(_HEAD_PREFIX)}
        stored = {k: v for k, v in stored.items() if not k.startswith(_HEAD_PREFIX)}
    _check_tensor_names(weights, set(expected), set(stored))
    bad = [f"{k}: file {tuple(stored[k].shape)}, model {tuple(v.shape)}"
           for k, v in expected.items() if tuple(stored[k].shape) != tuple(v.shape)]
    if bad:
        raise ModelDirectoryError(f"{weights}: tensor shapes do not match the config: " + "; ".join(bad))
    state = dict(stored)
    for alias, name in tied.items():
        state[alias] = stored[name]
    model.load_state_dict(state, strict=not fresh_head)
    model.to(device=device, dtype=dtype)
    return model.eval()


# -- LoRA adapters (genomamba finetune --lora) -----------------------------------------------------
#: PEFT's file names, so that PEFT's own ``PeftModel.from_pretrained`` reads an adapter directory too
ADAPTER_CONFIG_FILE = "adapter_config.json"
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
#: what PEFT's files do not say: the adapted model's architecture (its head) and the base it fits
ADAPTER_INFO_FILE = "genomamba_adapter.json"
ADAPTER_FORMAT_NAME = "genomamba-adapter"


def save_adapter(
    directory: str | os.PathLike,
    lora_config: dict,
    tensors: dict[str, torch.Tensor],
    *,
    architecture: dict,
    base_model: str | os.PathLike,
    overwrite: bool = False,
) -> Path:
    """Write a LoRA adapter (:func:`genomamba.model.lora.adapter_state`) as a directory, atomically::

        adapter_config.json        PEFT's LoraConfig; base_model_name_or_path: ``base_model``
        adapter_model.safetensors  the LoRA matrices and the trained head, by PEFT's names
        genomamba_adapter.json     {"format": "genomamba-adapter", "format_version": 1,
                                    "architecture": the adapted model's ModelConfig as a dict,
                                    "base_model": {"path", "weights_sha256"}}

    Raises:
        FileExistsError: the target exists and ``overwrite`` is False.
    """
    target, base = Path(directory), Path(base_model)
    if target.exists() and (not overwrite or not target.is_dir()):
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace a directory")
    info = {
        "format": ADAPTER_FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "architecture": architecture,
        "base_model": {"path": str(base), "weights_sha256": _sha256(base / WEIGHTS_FILE)},
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    with staged_directory(target) as tmp:
        _write_tensors(tmp / ADAPTER_WEIGHTS_FILE, tensors, {"format": "pt"})
        _write_text(tmp / ADAPTER_CONFIG_FILE, json.dumps(
            {**lora_config, "base_model_name_or_path": str(base)}, indent=2, sort_keys=True) + "\n")
        _write_text(tmp / ADAPTER_INFO_FILE, json.dumps(info, indent=2, sort_keys=True) + "\n")
        move_directory_into_place(tmp, target)
    return target


def load_adapter(
    base_directory: str | os.PathLike,
    adapter_directory: str | os.PathLike,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> GenomambaModel:
    """The model of ``base_directory`` with the adapter of ``adapter_directory`` applied and merged
    into its weights: the model that ``genomamba finetune --lora`` exported (up to rounding).

    Raises:
        ModelDirectoryError: see :func:`from_pretrained`; a missing or unreadable adapter file; an
            adapter trained on other base weights (sha256 differs); tensors that do not fit.
        UnavailableError: peft is not installed.
    """
    from genomamba.model.lora import load_lora, merge_lora

    adapter = Path(adapter_directory)
    info = _read_json(adapter / ADAPTER_INFO_FILE)
    if info.get("format") != ADAPTER_FORMAT_NAME:
        raise ModelDirectoryError(f"{adapter / ADAPTER_INFO_FILE} does not describe a {ADAPTER_FORMAT_NAME}")
    lora_config = _read_json(adapter / ADAPTER_CONFIG_FILE)
    weights = adapter / ADAPTER_WEIGHTS_FILE
    try:
        tensors = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ModelDirectoryError(f"cannot read {weights}: {exc}") from exc
    base = resolve_model(base_directory)
    wanted, found = info.get("base_model", {}).get("weights_sha256"), _sha256(base / WEIGHTS_FILE)
    if wanted != found:
        raise ModelDirectoryError(
            f"{adapter} was trained on a base model with weights sha256 {wanted} "
            f"({info.get('base_model', {}).get('path')}); {base / WEIGHTS_FILE} has {found}"
        )
    architecture = info.get("architecture", {})
    stored = read_config(base)["architecture"]
    # what the fine-tuning changed besides the head (e.g. rc_strategy ph -> none)
    changed = {k: v for k, v in architecture.items() if k != "head" and stored.get(k) != v}
    model = from_pretrained(base, head=architecture.get("head"), **changed)
    try:
        model = merge_lora(load_lora(model, lora_config, tensors))
    except ValueError as exc:
        raise ModelDirectoryError(f"{adapter}: {exc}") from exc
    model.to(device=device, dtype=dtype)
    return model.eval()


# -- helpers --------------------------------------------------------------------------------------
#: what stays float32 when the weights are stored in a lower precision (``weights_dtype``): vectors
#: (norm scales, biases, D) cost almost nothing, and A_log sets each state's decay exp(delta * A),
#: which every position compounds, so its rounding would move every output
_KEPT_NAMES = ("A_log",)
_KEPT_TEXT = "vectors and A_log"


def _stored_tensor(name: str, tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``tensor`` as ``save_pretrained(weights_dtype=dtype)`` stores it."""
    if not tensor.is_floating_point() or tensor.dim() < 2 or name.rsplit(".", 1)[-1] in _KEPT_NAMES:
        return tensor
    return tensor.to(dtype)


def _tensors_to_save(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """State dict with each storage once: ``({name: tensor}, {alias: stored name})``."""
    tensors: dict[str, torch.Tensor] = {}
    tied: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, t in model.state_dict(keep_vars=False).items():
        key = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), t.shape, t.stride())
        if t.numel() and key in seen:
            tied[name] = seen[key]
            continue
        seen[key] = name
        tensors[name] = t.detach().to("cpu").contiguous()
    return tensors, tied


def _check_tensor_names(path: Path, expected: set[str], stored: set[str]) -> None:
    missing, extra = sorted(expected - stored), sorted(stored - expected)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing tensor(s): {_names(missing)}")
        if extra:
            parts.append(f"{len(extra)} unexpected tensor(s): {_names(extra)}")
        raise ModelDirectoryError(f"{path} does not match its config.json: " + "; ".join(parts))


def _names(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _provenance(data_manifest_sha256: str | None, extra: dict[str, Any] | None) -> dict[str, Any]:
    prov = {
        "genomamba_version": __version__,
        "git_commit": _git_commit(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "torch_version": torch.__version__,
        "training_data_manifest_sha256": data_manifest_sha256,
    }
    prov.update(extra or {})
    return prov


def _git_commit() -> str | None:
    """Commit of the genomamba source tree when it is a git checkout, else None."""
    try:
        result = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and len(commit) == 40 else None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelDirectoryError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelDirectoryError(f"{path} does not hold a JSON object")
    return data


def _sha256(path: Path) -> str | None:
    """sha256 of a file, None when there is no such file."""
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    save_file(tensors, str(path), metadata=metadata)
    # safetensors creates the file private (0600); give it the mode of any other file written here
    # (the umask's), or a model shared on a cluster, or shipped in a wheel, is unreadable to others
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
