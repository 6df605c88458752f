"""The DNA alphabet: symbols <-> token ids, the complement table, and the case/IUPAC policy.

numpy only. Every other module (readers, tokeniser, model heads, tests) imports the ids and
tables from here rather than restating them, so that a change of alphabet is one edit and
one version bump.

Token ids (ALPHABET_VERSION 1)::

    0 [PAD]  1 [MASK]  2 [CLS]  3 [SEP]  4 [UNK]  5 A  6 C  7 G  8 T  9 N

Policy applied by :func:`encode`:

* upper and lower case give the same token; lower case is reported as a separate boolean
  soft-mask track (repeat-masked bases in UCSC/Ensembl FASTA files are lower case);
* IUPAC ambiguity codes R Y K M S W B D H V become N and are counted per code;
* ``U`` becomes ``T`` only when ``rna=True``; otherwise it is an invalid character;
* every other byte is invalid: :class:`InvalidCharacterError` names its offset, or with
  ``lenient=True`` it becomes N and is counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ALPHABET_VERSION = 1

SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[MASK]", "[CLS]", "[SEP]", "[UNK]")
BASES: str = "ACGTN"
TOKENS: tuple[str, ...] = SPECIAL_TOKENS + tuple(BASES)
VOCAB_SIZE = len(TOKENS)

PAD_ID, MASK_ID, CLS_ID, SEP_ID, UNK_ID = range(len(SPECIAL_TOKENS))
A_ID, C_ID, G_ID, T_ID, N_ID = (TOKENS.index(b) for b in BASES)
#: ids of the four unambiguous bases, in A C G T order (for random replacement in masking).
ACGT_IDS = np.array([A_ID, C_ID, G_ID, T_ID], dtype=np.uint8)

IUPAC_AMBIGUITY_CODES = "RYKMSWBDHV"

#: Sentinel produced by the encoding table for bytes that are not allowed.
INVALID_ID = 255

# complement of each token id; special tokens map to themselves, N to N.
COMPLEMENT_IDS = np.arange(VOCAB_SIZE, dtype=np.uint8)
COMPLEMENT_IDS[[A_ID, C_ID, G_ID, T_ID]] = [T_ID, G_ID, C_ID, A_ID]
COMPLEMENT_IDS.setflags(write=False)


def _encoding_table(*, rna: bool, lenient: bool) -> np.ndarray:
    table = np.full(256, N_ID if lenient else INVALID_ID, dtype=np.uint8)
    for base, token in zip("ACGTN", (A_ID, C_ID, G_ID, T_ID, N_ID), strict=True):
        table[ord(base)] = table[ord(base.lower())] = token
    for code in IUPAC_AMBIGUITY_CODES:
        table[ord(code)] = table[ord(code.lower())] = N_ID
    if rna:
        table[ord("U")] = table[ord("u")] = T_ID
    return table


# Four variants are few enough to build once at import (1 KiB in all).
_ENCODING_TABLES = {
    (rna, lenient): _encoding_table(rna=rna, lenient=lenient)
    for rna in (False, True)
    for lenient in (False, True)
}

_DECODE_UPPER = np.frombuffer(b"\x00\x00\x00\x00\x00ACGTN", dtype=np.uint8).copy()
_DECODE_LOWER = np.frombuffer(b"\x00\x00\x00\x00\x00acgtn", dtype=np.uint8).copy()


class InvalidCharacterError(ValueError):
    """A byte that is not DNA under the active policy.

    ``offset`` is the index of the first offending byte in the buffer given to :func:`encode`;
    readers translate it into a record, line and column.
    """

    def __init__(self, offset: int, byte: int):
        self.offset = offset
        self.byte = byte
        super().__init__(f"invalid character {describe_byte(byte)} at offset {offset}")


def describe_byte(byte: int) -> str:
    """Show a byte to a person: printable characters quoted, others as hex."""
    return repr(chr(byte)) if 32 <= byte < 127 else f"byte 0x{byte:02x}"


@dataclass
class EncodingStats:
    """What :func:`encode` changed or saw; added up over the chunks of a record."""

    iupac_counts: dict[str, int] = field(default_factory=dict)  # upper-case code -> count
    lenient_replacements: int = 0  # invalid bytes turned into N under lenient=True
    softmasked: int = 0  # lower-case bases
    rna_u: int = 0  # U/u turned into T under rna=True

    def add(self, other: EncodingStats) -> None:
        for code, count in other.iupac_counts.items():
            self.iupac_counts[code] = self.iupac_counts.get(code, 0) + count
        self.lenient_replacements += other.lenient_replacements
        self.softmasked += other.softmasked
        self.rna_u += other.rna_u

    @property
    def iupac_total(self) -> int:
        return sum(self.iupac_counts.values())

    def iupac_text(self) -> str:
        """The counts per code for people, in code order: ``R=2,Y=1``."""
        return ",".join(f"{code}={n}" for code, n in sorted(self.iupac_counts.items()))


_IUPAC_BYTES = {code: (ord(code), ord(code.lower())) for code in IUPAC_AMBIGUITY_CODES}

# The hot path of every reader: one 256-entry lookup gives, per input byte, the token id in the
# low four bits plus flags, so that the common case (only A C G T N, any case) costs one lookup,
# one max and two bitwise passes; the rare flags send a chunk down the slow path that counts.
_FLAG_LOWER = 0x10  # lower-case letter: the soft-mask track
_FLAG_COUNTED = 0x20  # IUPAC code or RNA U: correct token, but the chunk must be histogrammed
_FLAG_INVALID = 0x40  # not DNA under the policy (low bits hold N_ID for lenient=True)


def _flag_table(*, rna: bool) -> np.ndarray:
    table = np.full(256, _FLAG_INVALID | N_ID, dtype=np.uint8)
    strict = _ENCODING_TABLES[(rna, False)]
    for byte in range(256):
        token = int(strict[byte])
        if token == INVALID_ID:
            continue
        char = chr(byte)
        flags = _FLAG_LOWER if char.islower() else 0
        if char.upper() in IUPAC_AMBIGUITY_CODES or char.upper() == "U":
            flags |= _FLAG_COUNTED
        table[byte] = token | flags
    return table


_FLAG_TABLES = {rna: _flag_table(rna=rna) for rna in (False, True)}
_FLAG_TABLES_BYTES = {rna: _FLAG_TABLES[rna].tobytes() for rna in (False, True)}


def encode(
    sequence: bytes | bytearray | memoryview | np.ndarray,
    *,
    rna: bool = False,
    lenient: bool = False,
    want_softmask: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, EncodingStats]:
    """Turn sequence bytes into token ids.

    Args:
        sequence: ASCII bases, no line breaks (a 1-D uint8 array or a bytes-like object).
        rna: accept U/u as T.
        lenient: turn invalid bytes into N (counted) instead of raising.
        want_softmask: also return the lower-case track.

    Returns:
        ``(ids, softmask, stats)``: ``ids`` a new writable uint8 array of the same length;
        ``softmask`` a bool array (True where the input was a lower-case base) or None;
        ``stats`` the counts of what changed.

    Raises:
        InvalidCharacterError: for the first invalid byte when ``lenient`` is False.
        TypeError: for an array whose dtype is not uint8.
    """
    if isinstance(sequence, np.ndarray):
        if sequence.dtype != np.uint8:
            raise TypeError(f"encode needs uint8 bytes, got an array of {sequence.dtype}")
        raw = sequence.reshape(-1)
        flagged = _FLAG_TABLES[rna][raw]
    else:
        # bytes.translate is the fastest 256-entry lookup CPython offers (about 1 ns per byte).
        if not isinstance(sequence, bytes):
            sequence = bytes(sequence)
        raw = np.frombuffer(sequence, dtype=np.uint8)
        flagged = np.frombuffer(sequence.translate(_FLAG_TABLES_BYTES[rna]), dtype=np.uint8)
    ids = flagged & 0x0F  # a new, writable array
    lower = (flagged & _FLAG_LOWER) != 0
    stats = EncodingStats()
    if raw.size and int(flagged.max()) >= _FLAG_COUNTED:
        invalid = flagged >= _FLAG_INVALID
        n_invalid = int(np.count_nonzero(invalid))
        if n_invalid:
            if not lenient:
                offset = int(np.argmax(invalid))
                raise InvalidCharacterError(offset, int(raw[offset]))
            stats.lenient_replacements = n_invalid
        histogram = np.bincount(raw, minlength=256)
        for code, (upper, lower_byte) in _IUPAC_BYTES.items():
            count = int(histogram[upper] + histogram[lower_byte])
            if count:
                stats.iupac_counts[code] = count
        if rna:
            stats.rna_u = int(histogram[ord("U")] + histogram[ord("u")])
    stats.softmasked = int(np.count_nonzero(lower))
    return ids, (lower if want_softmask else None), stats


def decode(ids: np.ndarray, softmask: np.ndarray | None = None) -> bytes:
    """Token ids back to upper-case bases (lower case where ``softmask`` is True).

    Special tokens decode to NUL bytes; use it on base tokens.
    """
    ids = np.asarray(ids, dtype=np.uint8)
    if softmask is None:
        return _DECODE_UPPER[ids].tobytes()
    return np.where(softmask, _DECODE_LOWER[ids], _DECODE_UPPER[ids]).tobytes()


def complement(ids: np.ndarray) -> np.ndarray:
    """Complement every token id (A<->T, C<->G, N and special tokens unchanged)."""
    return COMPLEMENT_IDS[ids]


def reverse_complement(ids: np.ndarray) -> np.ndarray:
    """Reverse complement along the last axis; the minus strand read 5' to 3'."""
    return COMPLEMENT_IDS[np.asarray(ids)[..., ::-1]]


def alphabet_description() -> dict:
    """The alphabet as recorded in manifests and model configs."""
    return {"version": ALPHABET_VERSION, "tokens": list(TOKENS)}
