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
length when the shard is closed, so no shard is ever held in memory. Each shard's entry in the
manifest records its sha256 (of the whole file, header included: ``sha256sum`` agrees).
numpy and pyarrow only.

The reader checks what is cheap when it opens a directory (every shard's header, dtype, length and
size on disk against the manifest; every index row inside its shard), so a truncated or damaged
directory is an :class:`~genomamba.errors.InputDataError` naming the file, not a failure deep in
training. What costs a pass over the data is asked for: :meth:`TokenShards.check_tokens` (every
id a base or padding) and :meth:`TokenShards.verify_checksums` (the manifest's sha256).
"""

from __future__ import annotations

import json
import os
import struct
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from genomamba.alphabet import A_ID, N_ID, PAD_ID, reverse_complement
from genomamba.errors import InputDataError
from genomamba.io.compression import sha256_file

MANIFEST = "manifest.json"
INDEX = "index.parquet"
FORMAT = "genomamba-token-shards"
FORMAT_VERSION = 1
#: Tokens per shard before a new one is started (a window never straddles two shards).
DEFAULT_SHARD_TOKENS = 256 << 20
_NPY_HEADER_SIZE = 128
#: Tokens a shard may hold: padding and the bases A C G T N (ids A_ID..N_ID, one run of ids).
_STORED_IDS = (PAD_ID, *range(A_ID, N_ID + 1))
_SCAN_TOKENS = 16 << 20  # tokens checked at a time by TokenShards.check_tokens
_REMAKE = "re-make the directory with `genomamba tokenize --force`"


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
                # read back just written (from the page cache): the header is final only now
                "tokens_sha256": sha256_file(self._tokens.path),
                "softmask_sha256": sha256_file(self._masks.path),
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


def _npy_length(path: Path) -> int:
    """Elements of the 1-D uint8 ``.npy`` file at ``path``, after checking its header against its
    size on disk (a truncated file would otherwise fail later, at memory-mapping).

    Raises:
        InputDataError: a missing file, not a ``.npy`` file, another dtype or shape, or a size that
            disagrees with the header.
    """
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f"unsupported .npy version {version}")
            shape, fortran_order, dtype = read_header(handle)
            data_start = handle.tell()
            size = os.fstat(handle.fileno()).st_size
    except FileNotFoundError:
        raise InputDataError(f"{path}: shard file missing; {_REMAKE}") from None
    except ValueError as exc:  # numpy's message for a bad magic string or header
        raise InputDataError(f"{path}: not a readable .npy shard ({exc}); {_REMAKE}") from None
    if dtype != np.uint8 or len(shape) != 1:
        raise InputDataError(
            f"{path}: holds {dtype} of shape {shape}, a shard holds 1-D uint8 token ids; {_REMAKE}"
        )
    expected = data_start + shape[0]
    if size != expected:
        state = "truncated" if size < expected else "longer than its header says"
        raise InputDataError(
            f"{path}: {state}: {size:,} bytes on disk, its header says {shape[0]:,} tokens "
            f"({expected:,} bytes); {_REMAKE}"
        )
    return int(shape[0])


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
        InputDataError: a shard that is missing, truncated, of another dtype or shape, or an
            index row outside its shard (the message names the file).
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
        self._check_layout()

    def _check_layout(self) -> None:
        """Every shard file against the manifest, every index row against its shard."""
        shards = self.manifest.get("shards") or []
        n_tokens, n_mask_bytes = [], []
        for entry in shards:
            tokens = _npy_length(self.directory / entry["tokens"])
            if tokens != entry["n_tokens"]:
                raise InputDataError(
                    f"{self.directory / entry['tokens']}: holds {tokens:,} tokens, the manifest lists "
                    f"{entry['n_tokens']:,}; {_REMAKE}"
                )
            n_tokens.append(tokens)
            n_mask_bytes.append(_npy_length(self.directory / entry["softmask"]))
        if len(self) == 0:
            return
        col = self._col
        shard = col["shard"]
        if shard.min() < 0 or shard.max() >= len(shards):
            raise InputDataError(
                f"{self.directory / INDEX}: names shard {int(shard.max())}, the manifest lists "
                f"{len(shards)}; {_REMAKE}"
            )
        ends = col["offset"] + col["length"]
        mask_ends = col["mask_offset"] + (col["length"] + 7) // 8
        over = (ends > np.asarray(n_tokens)[shard]) | (mask_ends > np.asarray(n_mask_bytes)[shard])
        over |= (col["offset"] < 0) | (col["end"] - col["start"] > col["length"])
        if over.any():
            i = int(np.flatnonzero(over)[0])
            record, start, end = self.coordinates(i)
            raise InputDataError(
                f"{self.directory / INDEX}: window {i} ({record}:{start}-{end}) lies outside "
                f"{shards[int(shard[i])]['tokens']}; {_REMAKE}"
            )

    def check_tokens(self) -> None:
        """Check that every stored id is a base (A C G T N) or padding: a pass over all the data
        (memory-mapped, about 0.15 s per 256 MB shard).

        Raises:
            InputDataError: naming the shard file, the window and the offending id.
        """
        lowest, highest = A_ID, N_ID
        for number, entry in enumerate(self.manifest["shards"]):
            data = self._shard(self._tokens, "tokens", number)
            for first in range(0, data.size, _SCAN_TOKENS):
                chunk = data[first : first + _SCAN_TOKENS]
                # ids 1..lowest-1 are special tokens: (id - 1) wraps PAD (0) round to 255
                if chunk.max() <= highest and not ((chunk - np.uint8(1)) < lowest - 1).any():
                    continue
                bad = np.flatnonzero(~np.isin(chunk, _STORED_IDS))[0]
                offset = first + int(bad)
                raise InputDataError(
                    f"{self.directory / entry['tokens']}: token id {int(chunk[bad])} at offset {offset:,}"
                    f"{self._window_at(number, offset)} is not a base or padding; {_REMAKE}"
                )

    def _window_at(self, shard: int, offset: int) -> str:
        """`` (window i, record:start-end)`` of the token at ``offset`` of ``shard``, or ``""``."""
        col = self._col
        rows = np.flatnonzero((col["shard"] == shard) & (col["offset"] <= offset)
                              & (offset < col["offset"] + col["length"]))
        if rows.size == 0:
            return ""
        record, start, end = self.coordinates(int(rows[0]))
        return f" (window {int(rows[0])}, {record}:{start}-{end})"

    def verify_checksums(self) -> None:
        """Check every shard file against the sha256 its manifest records (a pass over all bytes).

        Raises:
            InputDataError: a digest differs, or the manifest has none (made by a genomamba
                version that did not record them).
        """
        for entry in self.manifest["shards"]:
            for key in ("tokens", "softmask"):
                path = self.directory / entry[key]
                expected = entry.get(f"{key}_sha256")
                if expected is None:
                    raise InputDataError(
                        f"{self.directory / MANIFEST}: records no sha256 for {entry[key]} (made by an "
                        f"older genomamba), so the shards cannot be verified; {_REMAKE}"
                    )
                actual = sha256_file(path)
                if actual != expected:
                    raise InputDataError(
                        f"{path}: sha256 {actual}, the manifest records {expected}: the file changed "
                        f"after it was written; {_REMAKE}"
                    )

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
