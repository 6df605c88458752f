"""Resume state on disk as files of bounded size, read back without pickle.

A state (nested dicts, lists and tuples of tensors, numpy arrays and plain Python values: what
:mod:`genomamba.train.state` saves) becomes, in one directory::

    state.json              the structure: every non-tensor value, and for each tensor its dtype,
                            shape and the names of the pieces that hold its bytes
    part-0000.safetensors   the tensors, packed in order into parts of at most ``limit`` bytes;
    part-0001.safetensors   a tensor larger than a part is flattened and cut into pieces
    ...
    manifest.json           name, size and sha256 of each file above; written last

Why bounded files: pretraining runs as a series of jobs, and what one job leaves for the next may
have to travel through a transfer that takes files of at most 16 MiB (:data:`PART_LIMIT`). Why no
pickle: reading a resume state must not run code from the files.

Encoding of ``state.json`` (any JSON object with one key starting with ``$`` is a tag):
``{"$tensor": {"dtype", "shape", "pieces"}}``, ``{"$tuple": [...]}``,
``{"$ndarray": {"dtype", "shape", "base64"}}`` (numpy arrays, e.g. numpy's RNG state),
``{"$dict": [[key, value], ...]}`` (keys that are not strings, e.g. the optimiser's parameter
indices), ``{"$state_dict": {"items", "metadata"}}`` (a module's state dict with its per-module
version ``_metadata``). Strings, numbers, booleans, None, lists and string-keyed dicts are plain
JSON; floats round-trip exactly (Python writes the shortest repr that reads back the same double).

A directory is complete only when ``manifest.json`` exists and every file it lists has the
recorded size and sha256 (:func:`check_state_files`); any other state is
:class:`IncompleteStateError`, naming the first file that is missing, short or different.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from safetensors import SafetensorError

from genomamba.errors import InputDataError

PART_LIMIT = 16 * 1024 * 1024  # bytes per file: the largest file the job transfers take
MIN_PART_LIMIT = 4096  # room for a safetensors header and at least one element of any dtype
STRUCTURE_FILE = "state.json"
MANIFEST_FILE = "manifest.json"
FORMAT = "genomamba-resume-state"
VERSION = 1

# safetensors header bytes, bounded from above: the 8-byte length, braces, padding to 8 bytes; and
# per tensor '"key":{"dtype":"F8_E4M3","shape":[..],"data_offsets":[a,b]},' with numbers of at
# most 20 digits. Parts are planned with these bounds and the written size is checked.
_FILE_HEADER = 64
_ENTRY_HEADER = 56
_NUMBER = 21


class IncompleteStateError(InputDataError):
    """A state directory without a manifest, or with a listed file missing, short or changed."""


def write_state_files(directory: str | os.PathLike, state: Any, limit: int = PART_LIMIT) -> list[Path]:
    """Write ``state`` into the existing, empty ``directory``: the parts, ``state.json``, and
    ``manifest.json`` last, each synced to disk. Returns the files written, manifest last.

    Raises:
        TypeError: a value that cannot be stored without pickle (named by its path in the state).
        ValueError: ``limit`` below :data:`MIN_PART_LIMIT`, or ``state.json`` or ``manifest.json``
            above ``limit`` (thousands of tensors or parts under a limit of a few KiB).
    """
    if limit < MIN_PART_LIMIT:
        raise ValueError(f"part limit {limit} bytes is below the minimum of {MIN_PART_LIMIT}")
    directory = Path(directory)
    table = _TensorTable()
    structure = {"format": FORMAT, "version": VERSION, "state": _encode(state, "state", table)}
    listing: list[dict] = []

    def write(name: str, data: bytes) -> None:  # one part in memory at a time
        _write_synced(directory / name, data)
        listing.append({"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})

    for index, part in enumerate(_plan_parts(table.entries, limit)):
        data = safetensors.torch.save({key: piece() for key, piece in part})
        if len(data) > limit:  # the header bounds above make this unreachable; never write it
            raise RuntimeError(f"part {index} came out at {len(data)} bytes, above the limit of {limit}")
        write(f"part-{index:04d}.safetensors", data)
    text = json.dumps(structure).encode()  # after planning, which fills in each tensor's pieces
    _check_size(STRUCTURE_FILE, text, limit)
    write(STRUCTURE_FILE, text)
    manifest = {"format": FORMAT, "version": VERSION, "part_limit": limit, "files": listing}
    text = json.dumps(manifest, indent=1).encode()
    _check_size(MANIFEST_FILE, text, limit)
    _write_synced(directory / MANIFEST_FILE, text)
    return [directory / entry["name"] for entry in listing] + [directory / MANIFEST_FILE]


def check_state_files(directory: str | os.PathLike) -> None:
    """Check that ``directory`` holds a complete state: its manifest and every file it lists, at
    the recorded size and sha256 (every byte is read).

    Raises:
        IncompleteStateError: naming the file that is missing, short, longer or different.
    """
    directory = Path(directory)
    for entry in _read_manifest(directory)["files"]:
        _read_listed(directory, entry)


def read_state_files(directory: str | os.PathLike) -> Any:
    """The state written by :func:`write_state_files`, every file checked against the manifest;
    tensors on the CPU with the dtypes, shapes and bits they were saved with.

    Raises:
        IncompleteStateError: as :func:`check_state_files`; or a file that does not parse.
    """
    directory = Path(directory)
    structure, tensors = None, {}
    for entry in _read_manifest(directory)["files"]:
        data = _read_listed(directory, entry)
        path = directory / entry["name"]
        try:
            if entry["name"] == STRUCTURE_FILE:
                structure = json.loads(data)
            else:
                for key, tensor in safetensors.torch.load(data).items():
                    if key in tensors:
                        raise IncompleteStateError(f"{path}: tensor {key!r} is also in another part")
                    tensors[key] = tensor
        except (ValueError, SafetensorError) as exc:  # JSONDecodeError is a ValueError
            raise IncompleteStateError(f"{path}: unreadable ({exc})") from None
    if not isinstance(structure, dict) or structure.get("format") != FORMAT:
        raise IncompleteStateError(f"{directory / STRUCTURE_FILE}: unlisted or not a {FORMAT}")
    try:
        return _decode(structure["state"], tensors, {})
    except (AttributeError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise IncompleteStateError(f"{directory / STRUCTURE_FILE}: does not fit its parts ({exc})") from None


# ---------------------------------------------------------------------------------------------
# The structure: values to JSON and back


class _TensorTable:
    """The tensors of a state in the order met, each under a unique key; a tensor met twice (a
    tied weight) is stored once and read back as one tensor object."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, torch.Tensor, dict]] = []
        self._keys: set[str] = set()
        self._seen: dict[tuple, dict] = {}

    def add(self, tensor: torch.Tensor, path: str) -> dict:
        same_view = (tensor.device, tensor.dtype, tensor.data_ptr(), tuple(tensor.shape), tensor.stride())
        if same_view in self._seen:
            return self._seen[same_view]
        key = path.replace("#", "_")  # '#' is kept for piece keys (key#0, key#1, ...)
        base, n = key, 1
        while key in self._keys:
            key, n = f"{base}~{n}", n + 1
        self._keys.add(key)
        node = {"dtype": str(tensor.dtype).removeprefix("torch."), "shape": list(tensor.shape), "pieces": []}
        self.entries.append((key, tensor.detach(), node))
        self._seen[same_view] = node
        return node


def _encode(value: Any, path: str, table: _TensorTable) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        return {"$tensor": table.add(value, path)}
    if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
        return {"$ndarray": {"dtype": value.dtype.str, "shape": list(value.shape),
                             "base64": base64.b64encode(np.ascontiguousarray(value).tobytes()).decode()}}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(item, f"{path}/{i}", table) for i, item in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(item, f"{path}/{i}", table) for i, item in enumerate(value)]
    if isinstance(value, dict):
        if hasattr(value, "_metadata"):  # nn.Module.state_dict(): load_state_dict reads per-module versions
            items = [[key, _encode(item, f"{path}/{key}", table)] for key, item in value.items()]
            metadata = _encode(value._metadata, f"{path}/_metadata", table)
            return {"$state_dict": {"items": items, "metadata": metadata}}
        if all(isinstance(key, str) and not key.startswith("$") for key in value):
            return {key: _encode(item, f"{path}/{key}", table) for key, item in value.items()}
        return {"$dict": [[_encode(key, f"{path}/key", table), _encode(item, f"{path}/{key}", table)]
                          for key, item in value.items()]}
    raise TypeError(f"resume state: {path} is a {type(value).__name__}, which is not stored without pickle")


def _decode(node: Any, tensors: dict[str, torch.Tensor], made: dict[tuple, torch.Tensor]) -> Any:
    if isinstance(node, list):
        return [_decode(item, tensors, made) for item in node]
    if not isinstance(node, dict):
        return node
    tag = next(iter(node), "")
    if not tag.startswith("$"):
        return {key: _decode(item, tensors, made) for key, item in node.items()}
    body = node[tag]
    if tag == "$tensor":
        return _join_pieces(body, tensors, made)
    if tag == "$tuple":
        return tuple(_decode(item, tensors, made) for item in body)
    if tag == "$dict":
        return {_decode(key, tensors, made): _decode(item, tensors, made) for key, item in body}
    if tag == "$state_dict":
        result = OrderedDict((key, _decode(item, tensors, made)) for key, item in body["items"])
        result._metadata = _decode(body["metadata"], tensors, made)
        return result
    if tag == "$ndarray":
        flat = np.frombuffer(base64.b64decode(body["base64"]), dtype=np.dtype(body["dtype"]))
        return flat.reshape(body["shape"]).copy()  # writable, as the array that was saved
    raise ValueError(f"unknown tag {tag}")


def _join_pieces(node: dict, tensors: dict[str, torch.Tensor], made: dict[tuple, torch.Tensor]):
    pieces = tuple(node["pieces"])
    if pieces not in made:
        dtype = getattr(torch, node["dtype"])
        if not isinstance(dtype, torch.dtype) or not pieces:
            raise ValueError(f"bad tensor entry {node}")
        found = [tensors[key] for key in pieces]
        if any(piece.dtype != dtype for piece in found):
            raise ValueError(f"tensor {pieces[0]} is not {dtype}")
        whole = found[0] if len(found) == 1 else torch.cat(found)
        made[pieces] = whole.reshape(node["shape"])  # raises when the sizes disagree
    return made[pieces]


# ---------------------------------------------------------------------------------------------
# Parts: packing tensors into files of at most `limit` bytes


def _plan_parts(entries: list[tuple[str, torch.Tensor, dict]], limit: int) -> list[list[tuple[str, Any]]]:
    """Parts as lists of ``(key, piece)``, ``piece()`` giving the CPU tensor to store. Tensors are
    taken in order; one that does not fit the room left starts a new part, and one larger than a
    whole part is flattened and cut into pieces that fill the parts in turn. Records each
    tensor's piece keys in its structure node."""
    parts: list[list[tuple[str, Any]]] = [[]]
    room = limit - _FILE_HEADER

    def place(key: str, piece, cost: int) -> None:
        nonlocal room
        parts[-1].append((key, piece))
        room -= cost

    def new_part() -> None:
        nonlocal room
        parts.append([])
        room = limit - _FILE_HEADER

    for key, tensor, node in entries:
        if _entry_cost(f"{key}#999999", tensor.dim()) + 8 > (limit - _FILE_HEADER) // 2:
            raise ValueError(f"resume state: the name {key[:80]!r}... is too long for parts of {limit} bytes")
        size = tensor.numel() * tensor.element_size()
        cost = _entry_cost(key, tensor.dim()) + size
        if cost > room and cost <= limit - _FILE_HEADER:
            new_part()
        if cost <= room:
            place(key, lambda t=tensor: _to_cpu(t), cost)
            node["pieces"] = [key]
            continue
        flat, start, index = tensor.reshape(-1), 0, 0  # larger than a part: cut into pieces
        while start < flat.numel():
            piece_key = f"{key}#{index}"
            fits = (room - _entry_cost(piece_key, 1)) // tensor.element_size()
            if fits < 1:
                new_part()
                continue
            stop = min(flat.numel(), start + fits)
            place(piece_key, lambda f=flat, a=start, b=stop: _to_cpu(f[a:b]),
                  _entry_cost(piece_key, 1) + (stop - start) * tensor.element_size())
            node["pieces"].append(piece_key)
            start, index = stop, index + 1
    return [part for part in parts if part]


def _entry_cost(key: str, ndim: int) -> int:
    return len(json.dumps(key)) + _ENTRY_HEADER + _NUMBER * (ndim + 2)


def _to_cpu(tensor: torch.Tensor) -> torch.Tensor:
    # a copy of its own: safetensors refuses tensors that share memory (pieces of one tensor, views)
    return tensor.to("cpu", copy=True).contiguous()


# ---------------------------------------------------------------------------------------------
# Files and the manifest


def _check_size(name: str, text: bytes, limit: int) -> None:
    # kilobytes for any real state (a line per tensor, a line per part): only a tiny limit trips it
    if len(text) > limit:
        raise ValueError(f"{name} would take {len(text)} bytes, above the part limit of {limit}")


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _read_manifest(directory: Path) -> dict:
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise IncompleteStateError(f"{path}: missing (the state was not completely written or copied)")
    try:
        manifest = json.loads(path.read_bytes())
        files = manifest["files"]
        ok = manifest.get("format") == FORMAT and all(
            isinstance(e["name"], str) and e["name"] == Path(e["name"]).name and not e["name"].startswith(".")
            and isinstance(e["bytes"], int) and isinstance(e["sha256"], str) for e in files
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise IncompleteStateError(f"{path}: unreadable ({exc})") from None
    if not ok:
        raise IncompleteStateError(f"{path}: not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise IncompleteStateError(
            f"{path}: format version {manifest.get('version')}, this genomamba reads version {VERSION}"
        )
    return manifest


def _read_listed(directory: Path, entry: dict) -> bytes:
    """The bytes of a file the manifest lists, checked against its size and sha256."""
    path = directory / entry["name"]
    if not path.is_file():
        raise IncompleteStateError(f"{path}: missing (listed in {MANIFEST_FILE} with {entry['bytes']} bytes)")
    data = path.read_bytes()
    if len(data) != entry["bytes"]:
        kind = "truncated" if len(data) < entry["bytes"] else "longer than listed"
        listed = f"{MANIFEST_FILE} says {entry['bytes']}"
        raise IncompleteStateError(f"{path}: {kind} ({len(data)} bytes, {listed})")
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise IncompleteStateError(f"{path}: sha256 differs from {MANIFEST_FILE} (changed or damaged)")
    return data
