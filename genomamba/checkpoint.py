"""The model directory: the only module that reads or writes model files.

Layout of a model directory (format version 1)::

    config.json        {"format": "genomamba-model", "format_version": 1,
                        "architecture": ModelConfig as a dict (head and label map included),
                        "alphabet": {"version", "tokens"}, "num_parameters": int,
                        "tied_tensors": {alias: stored name},
                        "provenance": {"genomamba_version", "git_commit", "created_utc",
                                       "torch_version", "training_data_manifest_sha256", ...}}
    model.safetensors  every tensor of the state dict once, by its state-dict name
    README.md          a model card written from config.json

Loading reads JSON and safetensors only (no pickle, no code from the directory). It fails with a
:class:`CheckpointError` (exit code 65) that names what is wrong: missing or unexpected tensors,
shape mismatches, a newer format version, another alphabet version, unknown config keys. Saving
writes into a temporary sibling directory and renames it into place, so a reader never sees a
half-written model and a failed save leaves nothing behind.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from genomamba import __version__
from genomamba.alphabet import ALPHABET_VERSION, alphabet_description
from genomamba.errors import InputDataError
from genomamba.model.config import ConfigError, HeadConfig, ModelConfig
from genomamba.model.model import GenomambaModel

FORMAT_NAME = "genomamba-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
_HEAD_PREFIX = "head."


class CheckpointError(InputDataError):
    """A model directory that cannot be loaded (or written); the message says why."""


def save_pretrained(
    model: GenomambaModel,
    directory: str | os.PathLike,
    *,
    data_manifest_sha256: str | None = None,
    provenance: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` as a model directory, atomically.

    Args:
        model: the model; its ``config`` is stored as the architecture.
        directory: target path (created; its parent too).
        data_manifest_sha256: sha256 of the training data manifest, recorded in provenance.
        provenance: extra JSON-serialisable provenance entries (e.g. run id, steps).
        overwrite: replace an existing directory (the old one is removed only after the new one
            is in place).

    Returns:
        The target path.

    Raises:
        FileExistsError: the target exists and ``overwrite`` is False.
    """
    target = Path(directory)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a directory")
    tensors, tied = _tensors_to_save(model)
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "architecture": model.config.to_dict(),
        "alphabet": alphabet_description(),
        "num_parameters": model.num_parameters(),
        "tied_tensors": tied,
        "provenance": _provenance(data_manifest_sha256, provenance),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        metadata = {"format": "pt", FORMAT_NAME: str(FORMAT_VERSION)}
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata=metadata)
        with open(tmp / WEIGHTS_FILE, "rb") as fh:
            os.fsync(fh.fileno())
        _write_text(tmp / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True) + "\n")
        _write_text(tmp / CARD_FILE, model_card(config))
        if target.exists():
            old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_config(directory: str | os.PathLike) -> dict:
    """The validated ``config.json`` of a model directory (format, version and alphabet checked).

    Raises:
        CheckpointError: missing/unparsable file, another format, a newer format version, or
            another alphabet version.
    """
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a genomamba model directory: {CONFIG_FILE} is missing")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    found = config.get("format") if isinstance(config, dict) else None
    if found != FORMAT_NAME:
        raise CheckpointError(f"{path} does not describe a {FORMAT_NAME} (format={found!r})")
    version = config.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has model format version {version}, but genomamba {__version__} reads versions up to "
            f"{FORMAT_VERSION}; upgrade genomamba to load it"
        )
    alphabet = config.get("alphabet", {})
    if alphabet.get("version") != ALPHABET_VERSION:
        raise CheckpointError(
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
        directory: the model directory.
        head: a different head (e.g. a classifier on a pretrained MLM backbone). Its tensors start
            fresh; the backbone must still match exactly. None keeps the stored head.
        device, dtype: where and in which dtype to put the parameters (default: as stored, on CPU).
        overrides: other config fields to change (e.g. ``gradient_checkpointing=True``); tensor
            shapes must still match.

    Returns:
        The model in eval mode.

    Raises:
        CheckpointError: see :func:`read_config`; unknown or invalid config keys; a missing or
            unreadable weights file; missing, unexpected or mis-shaped tensors (named).
    """
    directory = Path(directory)
    config_json = read_config(directory)
    try:
        config = ModelConfig.from_dict(config_json.get("architecture", {}))
        if head is not None:
            overrides["head"] = HeadConfig.from_dict(head) if isinstance(head, dict) else head
        if overrides:
            config = config.replace(**overrides)
    except ConfigError as exc:
        raise CheckpointError(f"{directory / CONFIG_FILE}: {exc}") from exc
    fresh_head = head is not None and config.head != ModelConfig.from_dict(config_json["architecture"]).head

    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{directory} is not a complete model directory: {WEIGHTS_FILE} is missing")
    try:
        stored = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"cannot read {weights}: {exc}") from exc

    model = GenomambaModel(config)
    expected, tied = _tensors_to_save(model)
    if fresh_head:
        expected = {k: v for k, v in expected.items() if not k.startswith(_HEAD_PREFIX)}
        stored = {k: v for k, v in stored.items() if not k.startswith(_HEAD_PREFIX)}
    _check_tensor_names(weights, set(expected), set(stored))
    bad = [f"{k}: file {tuple(stored[k].shape)}, model {tuple(v.shape)}"
           for k, v in expected.items() if tuple(stored[k].shape) != tuple(v.shape)]
    if bad:
        raise CheckpointError(f"{weights}: tensor shapes do not match the config: " + "; ".join(bad))
    state = dict(stored)
    for alias, name in tied.items():
        state[alias] = stored[name]
    model.load_state_dict(state, strict=not fresh_head)
    model.to(device=device, dtype=dtype)
    return model.eval()


def model_card(config: dict) -> str:
    """The README.md of a model directory, written from its ``config.json`` dict."""
    arch, prov = config["architecture"], config["provenance"]
    head, mixer = arch["head"], arch["mixer"]
    rc = {
        "ps": "parameter sharing (exactly RC-equivariant)",
        "ph": "post-hoc conjoining (averaged over both strands at inference)",
        "none": "none",
    }[arch["rc_strategy"]]
    task = head["task"]
    if head["problem_type"]:
        task += f" ({head['problem_type']}, {head['num_labels']} outputs)"
    if arch["bidirectional"]:
        ties = "tied in/out projections" if arch["tie_projections"] else "untied projections"
        mixer_text = f"BiMamba, {ties}, combine {arch['combine']}"
    else:
        mixer_text = "unidirectional Mamba"
    d_inner = arch["d_model"] * mixer["expand"]
    rows = [
        ("preset", arch.get("preset") or "custom"),
        ("parameters", f"{config['num_parameters']:,}"),
        ("layers x d_model", f"{arch['n_layer']} x {arch['d_model']}"),
        ("d_inner, d_state", f"{d_inner}, {mixer['d_state']}"),
        ("mixer", mixer_text),
        ("reverse complement", rc),
        ("head", task),
        ("labels", ", ".join(head["labels"]) if head.get("labels") else "-"),
        ("window sized for", f"{arch['max_length']:,} bases" if arch.get("max_length") else "-"),
        ("alphabet", f"version {config['alphabet']['version']}: {' '.join(config['alphabet']['tokens'])}"),
        ("genomamba", f"{prov['genomamba_version']} (commit {prov.get('git_commit') or 'unknown'})"),
        ("training data manifest sha256", prov.get("training_data_manifest_sha256") or "not recorded"),
        ("created (UTC)", prov["created_utc"]),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return (
        "# genomamba model\n\n"
        "A character-level bidirectional Mamba DNA language model written by genomamba "
        f"(model format {config['format']} v{config['format_version']}).\n\n"
        f"| | |\n|---|---|\n{table}\n\n"
        "## Loading\n\n```python\nfrom genomamba.checkpoint import from_pretrained\n"
        "model = from_pretrained(\"path/to/this/directory\")\n```\n\n"
        "Inputs are right-padded token ids from `genomamba.alphabet` with an attention mask or lengths.\n"
        "Files: `config.json` (architecture, alphabet, provenance), `model.safetensors`\n"
        "(weights; loading never unpickles).\n\n"
        "## Intended use and limits\n\n"
        "Research on DNA sequence modelling. Predictions are only as good as the training data named above;\n"
        "check them against held-out data for your organism and task before relying on them.\n"
    )


# -- helpers --------------------------------------------------------------------------------------
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
        raise CheckpointError(f"{path} does not match its config.json: " + "; ".join(parts))


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


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
