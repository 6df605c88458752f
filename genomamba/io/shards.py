"""The token-shard directory (DESIGN.md §2): writer and memory-mapped reader.

Layout of a directory written by ``genomamba tokenize``::

    manifest.json            inputs (sha256), parameters, alphabet, versions, records, shard list
    index.parquet            one row per window, in shard order (columns below)
    tokens-00000.npy         uint8 token ids, 1-D, the windows one after another
    softmask-00000.npy       uint8, the windows' soft-mask bits (np.packbits, big-endian bit order),
                             each window starting on a byte boundary
    ...

Index columns: ``record`` (string), ``start``, ``end`` (0-based half-open, on the record),
``strand`` (always ``+``: the minus strand is made at read time through the complement table),
``shard``, ``offset`` (token offset of the window in its tokens shard), ``length`` (tokens stored:
``end - start``, or the window size for padded windows), ``mask_offset`` (byte offset in the
softmask shard), ``n_fraction`` and ``softmask_fraction`` (over the real bases), ``input``
(position of the source file in the manifest's ``inputs``).

Shards are written as a stream: a fixed 128-byte ``.npy`` header is rewritten with the final
length when the shard is closed, so no shard is ever held in memory. numpy and pyarrow only.
"""

from __future__ import annotations

import json
import struct
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from genomamba.alphabet import N_ID, reverse_complement

MANIFEST = "manifest.json"
INDEX = "index.parquet"
FORMAT = "genomamba-token-shards"
FORMAT_VERSION = 1
#: Tokens per shard before a new one is started (a window never straddles two shards).
DEFAULT_SHARD_TOKENS = 256 << 20
_NPY_HEADER_SIZE = 128


def npy_header(length: int) -> bytes:
    """A version-1.0 ``.npy`` header for a 1-D uint8 array, always exactly 128 bytes."""
    text = f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({length},), }}".encode("ascii")
    magic = b"\x93NUMPY\x01\x00"
    padding = _NPY_HEADER_SIZE - len(magic) - 2 - len(text) - 1
    return magic + struct.pack("<H", _NPY_HEADER_SIZE - len(magic) - 2) + text + b" " * padding + b"\n"


class _NpyStream:
    """A 1-D uint8 ``.npy`` file written by appending."""

    def __init__(self, path: Path):
        self.path = path
        self.size = 0
        self._handle: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._handle.write(npy_header(0))

    def append(self, data: np.ndarray) -> int:
        offset = self.size
        self._handle.write(np.ascontiguousarray(data, dtype=np.uint8).data)
        self.size += data.size
        return offset

    def close(self) -> None:
        self._handle.seek(0)
        self._handle.write(npy_header(self.size))
        self._handle.close()


class ShardWriter:
    """Append windows to token and soft-mask shards and collect the index rows.

    Args:
        directory: an existing, empty directory (the caller makes it atomic).
        shard_tokens: start a new shard when the next window would push a shard past this.
    """

    def __init__(self, directory: str | Path, shard_tokens: int = DEFAULT_SHARD_TOKENS):
        self.directory = Path(directory)
        self.shard_tokens = shard_tokens
        self.shards: list[dict] = []
        self._tokens: _NpyStream | None = None
        self._masks: _NpyStream | None = None
        self._windows_in_shard = 0
        self._record_codes: dict[str, int] = {}
        self._columns = {
            "record": array("i"),
            "start": array("q"),
            "end": array("q"),
            "shard": array("i"),
            "offset": array("q"),
            "length": array("q"),
            "mask_offset": array("q"),
            "n_fraction": array("f"),
            "softmask_fraction": array("f"),
            "input": array("i"),
        }

    @property
    def windows_written(self) -> int:
        return len(self._columns["start"])

    def _open_shard(self) -> None:
        self._close_shard()
        number = len(self.shards)
        self._tokens = _NpyStream(self.directory / f"tokens-{number:05d}.npy")
        self._masks = _NpyStream(self.directory / f"softmask-{number:05d}.npy")
        self._windows_in_shard = 0

    def _close_shard(self) -> None:
        if self._tokens is None:
            return
        self._tokens.close()
        self._masks.close()
        self.shards.append(
            {
                "tokens": self._tokens.path.name,
                "softmask": self._masks.path.name,
                "n_tokens": self._tokens.size,
                "n_windows": self._windows_in_shard,
            }
        )
        self._tokens = self._masks = None

    def add(
        self,
        record: str,
        start: int,
        end: int,
        ids: np.ndarray,
        softmask: np.ndarray | None,
        input_index: int = 0,
        n_fraction: float | None = None,
    ) -> None:
        """Store one window: ``ids`` (uint8, ``end - start`` bases, or more when padded)."""
        if self._tokens is None or (self._tokens.size and self._tokens.size + ids.size > self.shard_tokens):
            self._open_shard()
        real = end - start
        if n_fraction is None:
            n_fraction = window_n_fraction(ids, real)
        soft = int(np.count_nonzero(softmask[:real])) if softmask is not None else 0
        bits = np.packbits(softmask) if softmask is not None else np.zeros((ids.size + 7) // 8, np.uint8)
        columns = self._columns
        columns["record"].append(self._record_codes.setdefault(record, len(self._record_codes)))
        columns["start"].append(start)
        columns["end"].append(end)
        columns["shard"].append(len(self.shards))
        columns["offset"].append(self._tokens.append(ids))
        columns["length"].append(ids.size)
        columns["mask_offset"].append(self._masks.append(bits))
        columns["n_fraction"].append(n_fraction)
        columns["softmask_fraction"].append(soft / real if real else 0.0)
        columns["input"].append(input_index)
        self._windows_in_shard += 1

    def close(self) -> list[dict]:
        """Finish the last shard and write ``index.parquet``; returns the shard list."""
        import pyarrow as pa  # only now: pyarrow is heavy and not needed while streaming
        import pyarrow.parquet as pq

        self._close_shard()
        columns = self._columns
        n = len(columns["start"])
        types = {
            "start": pa.int64(),
            "end": pa.int64(),
            "shard": pa.int32(),
            "offset": pa.int64(),
            "length": pa.int64(),
            "mask_offset": pa.int64(),
            "n_fraction": pa.float32(),
            "softmask_fraction": pa.float32(),
            "input": pa.int32(),
        }
        arrays = {
            "record": pa.DictionaryArray.from_arrays(
                _arrow_numbers(pa, pa.int32(), columns["record"]),
                _arrow_strings(pa, list(self._record_codes)),
            ),
            "strand": _arrow_strings(pa, ["+"] * n),
        }
        arrays.update({name: _arrow_numbers(pa, kind, columns[name]) for name, kind in types.items()})
        order = ["record", "start", "end", "strand", "shard", "offset", "length", "mask_offset"]
        order += ["n_fraction", "softmask_fraction", "input"]
        table = pa.Table.from_arrays([arrays[name] for name in order], names=order)
        pq.write_table(table, self.directory / INDEX)
        return self.shards


# Arrow arrays straight from buffers: pa.array() on numpy or lists imports pandas (+50 MB of
# memory) just to check whether its argument is a pandas object.
def _arrow_numbers(pa, kind, values: array):
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


def _arrow_strings(pa, items: list[str]):
    data = [item.encode("utf-8") for item in items]
    offsets = np.zeros(len(data) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in data], out=offsets[1:])
    return pa.Array.from_buffers(
        pa.large_string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))]
    )


def window_n_fraction(ids: np.ndarray, real_length: int) -> float:
    """Fraction of N among the first ``real_length`` tokens (padding excluded)."""
    return float(np.count_nonzero(ids[:real_length] == N_ID)) / real_length if real_length else 0.0


class TokenShards:
    """Read a token-shard directory: ``len(shards)`` windows; ``shards[i]`` gives window ``i``.

    ``shards[i]`` is a read-only uint8 view into a memory-mapped shard (plus strand). Use
    :meth:`get` with ``strand='-'`` for the reverse complement (a new array; with the ``pad``
    policy the padding stays at the end), :meth:`softmask` for the lower-case track, and
    :attr:`index` (a pyarrow Table; ``.to_pandas()`` for a DataFrame) for coordinates.

    Raises:
        FileNotFoundError: no manifest.json in ``directory``.
        ValueError: not a token-shard directory of a version this reader understands.
    """

    def __init__(self, directory: str | Path):
        import pyarrow.parquet as pq

        self.directory = Path(directory)
        with open(self.directory / MANIFEST, encoding="utf-8") as handle:
            self.manifest = json.load(handle)
        if self.manifest.get("format") != FORMAT or self.manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{directory}: not a version-{FORMAT_VERSION} {FORMAT} directory")
        self.index = pq.read_table(self.directory / INDEX)
        self.records: list[str] = self.index.column("record").to_pylist()
        columns = ("start", "end", "shard", "offset", "length", "mask_offset")
        self._col = {name: self.index.column(name).to_numpy() for name in columns}
        self._tokens: dict[int, np.ndarray] = {}
        self._masks: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.index.num_rows

    def _shard(self, cache: dict, key: str, shard: int) -> np.ndarray:
        if shard not in cache:
            cache[shard] = np.load(self.directory / self.manifest["shards"][shard][key], mmap_mode="r")
        return cache[shard]

    def __getitem__(self, i: int) -> np.ndarray:
        return self.get(i)

    def get(self, i: int, strand: str = "+") -> np.ndarray:
        """Token ids of window ``i`` (uint8, shape ``(length,)``) on ``strand`` ``'+'`` or ``'-'``."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        i %= len(self)
        col = self._col
        offset = int(col["offset"][i])
        ids = self._shard(self._tokens, "tokens", int(col["shard"][i]))[
            offset : offset + int(col["length"][i])
        ]
        if strand == "+":
            return ids
        if strand != "-":
            raise ValueError(f"strand must be '+' or '-', got {strand!r}")
        real = int(col["end"][i] - col["start"][i])
        return np.concatenate([reverse_complement(ids[:real]), ids[real:]])

    def softmask(self, i: int, strand: str = "+") -> np.ndarray:
        """Soft-mask track of window ``i`` (bool, same shape as :meth:`get`)."""
        i %= len(self)
        col = self._col
        length = int(col["length"][i])
        start = int(col["mask_offset"][i])
        packed = self._shard(self._masks, "softmask", int(col["shard"][i]))[start : start + (length + 7) // 8]
        mask = np.unpackbits(packed, count=length).astype(bool)
        if strand == "-":
            real = int(col["end"][i] - col["start"][i])
            mask = np.concatenate([mask[:real][::-1], mask[real:]])
        return mask

    def coordinates(self, i: int) -> tuple[str, int, int]:
        """``(record, start, end)`` of window ``i``, 0-based half-open."""
        i %= len(self)
        return self.records[i], int(self._col["start"][i]), int(self._col["end"][i])

    def windows_of(self, record: str) -> Sequence[int]:
        """Window numbers of one record, in order."""
        return [i for i, name in enumerate(self.records) if name == record]
