"""The models genomamba ships: names such as ``genomamba-small-1k`` that load like model directories.

This folder is package data as well as code, so ``pip install genomamba`` carries it::

    models.json   {"format": "genomamba-model-registry", "format_version": 1,
                   "models": {NAME: {"description": text, "preset": text,
                                     "files": {FILE: sha256}, "card": {what the model card says}}}}
    NAME/         a shipped model directory (config.json, model.safetensors in bf16, README.md)

A name whose ``files`` is empty is registered but not shipped in this build (a model that is
planned, not yet trained). Wherever genomamba accepts a model directory (``from_pretrained``,
``genomamba.load``, ``MODEL_DIR``/``--model`` of every command), :func:`resolve` decides what the
argument means: an existing path wins; else a registered name gives its folder here once every
file matches its sha256 pin; else the argument comes back unchanged, and the caller's own error
for a missing directory follows. A registered name that is not shipped, a missing file or a file
whose sha256 differs from its pin is a :class:`ShippedModelError` (exit code 65) naming the
model and what to do.

Torch-free and light (json and hashlib): the command line checks names while it parses options.
``scripts/ship_model.py`` turns a trained run into a shipped model and writes its pins. The
registry folder is :data:`REGISTRY`, read when each function runs, so that tests and the shipping
script can point it elsewhere (every function also takes ``registry=``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from genomamba import __version__
from genomamba.errors import InputDataError

#: The registry folder: this package's own folder (tests point it at a temporary one).
REGISTRY = Path(__file__).resolve().parent
MANIFEST_FILE = "models.json"
FORMAT_NAME = "genomamba-model-registry"
FORMAT_VERSION = 1
#: Where a user reads what ships and how a trained run becomes a shipped model.
DOCS = "docs/pretraining.md, section 'Shipped models'"
#: a model name or a file name of the manifest: one path component (no separators, no "." or "..")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ShippedModelError(InputDataError):
    """A registered model that is not shipped in this build, is incomplete, or whose files differ
    from their sha256 pins; or an unreadable manifest. The message names the model and what to do."""


@dataclass(frozen=True)
class RegisteredModel:
    """One entry of ``models.json``. ``files``: file name -> sha256 (empty: not shipped);
    ``card``: the summary its model card gives (tokens, data, compute, validation loss)."""

    name: str
    description: str
    preset: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    card: dict = field(default_factory=dict)

    @property
    def shipped(self) -> bool:
        return bool(self.files)

    def to_dict(self) -> dict:
        return {"description": self.description, "preset": self.preset,
                "files": dict(sorted(self.files.items())), "card": self.card}


def read_manifest(registry: str | os.PathLike | None = None) -> dict[str, RegisteredModel]:
    """The registered models of ``registry`` (default :data:`REGISTRY`) by name, in manifest order.
    A registry without ``models.json`` registers nothing.

    Raises:
        ShippedModelError: ``models.json`` is not valid JSON or not a version-1 registry, or an
            entry has a bad name, file name or sha256 (named).
    """
    path = _folder(registry) / MANIFEST_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShippedModelError(f"cannot read the model registry {path}: {exc}; reinstall genomamba") from exc
    version = data.get("format_version") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME or version != FORMAT_VERSION:
        raise ShippedModelError(f"{path} is not a {FORMAT_NAME} of version {FORMAT_VERSION}; "
                                "reinstall genomamba")
    models = {}
    for name, entry in (data.get("models") or {}).items():
        files = entry.get("files") if isinstance(entry, dict) else None
        if not NAME_PATTERN.fullmatch(name) or not isinstance(files, dict):
            raise ShippedModelError(f"{path}: entry {name!r} needs a plain name and a 'files' mapping")
        for file, digest in files.items():
            if not (NAME_PATTERN.fullmatch(file) and isinstance(digest, str) and _SHA256.fullmatch(digest)):
                raise ShippedModelError(f"{path}: model {name}: file {file!r} needs a plain name and a "
                                        f"lower-case hex sha256, got {digest!r}")
        models[name] = RegisteredModel(name, str(entry.get("description", "")), entry.get("preset"),
                                       dict(files), dict(entry.get("card") or {}))
    return models


def manifest_text(models: dict[str, RegisteredModel]) -> str:
    """``models.json`` for ``models`` (what :func:`read_manifest` reads back), as text."""
    data = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "models": {name: model.to_dict() for name, model in models.items()}}
    return json.dumps(data, indent=2) + "\n"


def is_registered(name: str, registry: str | os.PathLike | None = None) -> bool:
    """Whether ``name`` is a registered model (shipped or not).

    Raises:
        ShippedModelError: see :func:`read_manifest`.
    """
    return str(name) in read_manifest(registry)


def resolve(model: str | os.PathLike, registry: str | os.PathLike | None = None) -> Path:
    """What a model argument means: an existing path as it is; else the verified folder of the
    registered model of that name; else ``model`` unchanged (the caller reports the missing directory).

    Raises:
        ShippedModelError: a registered name that this build does not ship, a shipped file that
            is missing, or one whose sha256 differs from its pin; see :func:`read_manifest`.
    """
    path = Path(model)
    if path.exists() or not is_registered(str(model), registry):
        return path
    return shipped_directory(str(model), registry)


def shipped_directory(name: str, registry: str | os.PathLike | None = None) -> Path:
    """The folder of the registered model ``name``, every file checked against its sha256 pin
    (whatever the working directory holds).

    Raises:
        ShippedModelError: ``name`` is not registered, or not shipped in this build, or a shipped
            file is missing or differs from its pin; see :func:`read_manifest`.
    """
    models = read_manifest(registry)
    entry = models.get(name)
    if entry is None:
        raise ShippedModelError(f"{name} is not a registered genomamba model; registered: "
                                f"{', '.join(models) or 'none'} ({_folder(registry) / MANIFEST_FILE})")
    if not entry.shipped:
        shipped = ", ".join(m.name for m in models.values() if m.shipped) or "none yet"
        raise ShippedModelError(
            f"{entry.name} is a registered genomamba model ({entry.description}), but this build "
            f"(genomamba {__version__}) does not ship its weights: it has not been trained and shipped yet. "
            f"Models shipped in this build: {shipped}. How to train it and ship it: {DOCS}; or pass a "
            "model directory of your own (genomamba pretrain writes RUN_DIR/model)"
        )
    return _verified(entry, _folder(registry))


def registry_status(registry: str | os.PathLike | None = None) -> list[dict]:
    """Every registered model with ``name``, ``description``, ``state`` (``shipped``, ``not
    shipped`` or ``damaged``), ``path`` (shipped ones) and ``detail`` (why it is damaged), each
    shipped file's sha256 checked: what ``genomamba doctor`` lists.

    Raises:
        ShippedModelError: see :func:`read_manifest`.
    """
    folder = _folder(registry)
    report = []
    for entry in read_manifest(folder).values():
        row = {"name": entry.name, "description": entry.description, "state": "not shipped"}
        if entry.shipped:
            try:
                row.update(state="shipped", path=str(_verified(entry, folder)))
            except ShippedModelError as exc:
                row.update(state="damaged", detail=str(exc))
        report.append(row)
    return report


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file, as lower-case hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(entry: RegisteredModel, folder: Path) -> Path:
    """The model's folder once every pinned file is there with its sha256 (every time: a shipped
    file is a few MB, and a changed one would otherwise load silently)."""
    directory = folder / entry.name
    manifest = folder / MANIFEST_FILE
    for file, pin in sorted(entry.files.items()):
        path = directory / file
        if not path.is_file():
            raise ShippedModelError(f"the shipped model {entry.name} is incomplete: {path} is missing "
                                    f"(pinned in {manifest}); reinstall genomamba")
        found = file_sha256(path)
        if found != pin:
            raise ShippedModelError(
                f"{path}: sha256 {found} differs from its pin {pin} in {manifest}: the shipped model "
                f"{entry.name} was changed or damaged; reinstall genomamba (or ship it again with "
                "scripts/ship_model.py)"
            )
    return directory


def _folder(registry: str | os.PathLike | None) -> Path:
    return Path(registry) if registry is not None else REGISTRY
