"""Tests for genomamba.alphabet: ids, complement table, encode/decode and the case/IUPAC policy.

The oracle below encodes one byte at a time with plain Python, from the alphabet's own public
constants, so the vectorised table is checked against an independent reading of the policy.
"""

from __future__ import annotations

import numpy as np
import pytest

from genomamba import alphabet as ab


def _oracle(data: bytes, *, rna: bool, lenient: bool):
    """Per-byte reference of the documented policy: (ids, softmask, iupac, lenient, soft, u) or the
    offset of the first invalid byte."""
    ids, soft, iupac = [], [], {}
    lenient_count = softmasked = rna_u = 0
    base_ids = {"A": ab.A_ID, "C": ab.C_ID, "G": ab.G_ID, "T": ab.T_ID, "N": ab.N_ID}
    for offset, byte in enumerate(data):
        char = chr(byte)
        upper = char.upper() if byte < 128 else char
        if upper in base_ids:
            token = base_ids[upper]
        elif upper in ab.IUPAC_AMBIGUITY_CODES:
            token = ab.N_ID
            iupac[upper] = iupac.get(upper, 0) + 1
        elif rna and upper == "U":
            token = ab.T_ID
            rna_u += 1
        elif lenient:
            ids.append(ab.N_ID)
            soft.append(False)
            lenient_count += 1
            continue
        else:
            return offset
        is_lower = char.islower()
        softmasked += is_lower
        ids.append(token)
        soft.append(is_lower)
    return ids, soft, iupac, lenient_count, softmasked, rna_u


def test_token_ids_are_stable():
    # Changing these breaks every saved model and shard directory: bump ALPHABET_VERSION instead.
    assert ab.ALPHABET_VERSION == 1
    assert ab.TOKENS == ("[PAD]", "[MASK]", "[CLS]", "[SEP]", "[UNK]", "A", "C", "G", "T", "N")
    assert (ab.PAD_ID, ab.A_ID, ab.C_ID, ab.G_ID, ab.T_ID, ab.N_ID) == (0, 5, 6, 7, 8, 9)
    assert ab.VOCAB_SIZE == 10
    assert ab.ACGT_IDS.tolist() == [5, 6, 7, 8]
    assert ab.alphabet_description() == {"version": 1, "tokens": list(ab.TOKENS)}


def test_complement_is_an_involution_and_pairs_bases():
    ids = np.arange(ab.VOCAB_SIZE, dtype=np.uint8)
    assert np.array_equal(ab.complement(ab.complement(ids)), ids)
    pairs = {ab.A_ID: ab.T_ID, ab.C_ID: ab.G_ID, ab.G_ID: ab.C_ID, ab.T_ID: ab.A_ID, ab.N_ID: ab.N_ID}
    for base, comp in pairs.items():
        assert ab.COMPLEMENT_IDS[base] == comp
    for special in range(len(ab.SPECIAL_TOKENS)):
        assert ab.COMPLEMENT_IDS[special] == special
    with pytest.raises(ValueError):
        ab.COMPLEMENT_IDS[0] = 3  # read-only, so nobody can corrupt it at run time


def test_reverse_complement_reads_minus_strand():
    ids, _, _ = ab.encode(b"AACGTN")
    assert ab.decode(ab.reverse_complement(ids)) == b"NACGTT"
    batch = np.stack([ids, ids[::-1].copy()])
    rc = ab.reverse_complement(batch)
    assert rc.shape == (2, 6)
    assert ab.decode(rc[1]) == b"AACGTN"[::-1].translate(bytes.maketrans(b"ACGT", b"TGCA"))[::-1]


def test_case_gives_same_tokens_and_softmask_track():
    upper, mask_u, stats_u = ab.encode(b"ACGTN", want_softmask=True)
    lower, mask_l, stats_l = ab.encode(b"acgtn", want_softmask=True)
    assert np.array_equal(upper, lower)
    assert upper.dtype == np.uint8
    assert mask_u.tolist() == [False] * 5 and mask_l.tolist() == [True] * 5
    assert stats_u.softmasked == 0 and stats_l.softmasked == 5
    assert ab.decode(lower, mask_l) == b"acgtn"
    assert ab.encode(b"acgt")[1] is None  # no track unless asked


def test_iupac_becomes_n_and_is_counted():
    ids, mask, stats = ab.encode(b"ARYKMSWBDHVr", want_softmask=True)
    assert ids.tolist() == [ab.A_ID] + [ab.N_ID] * 11
    assert stats.iupac_counts == {c: 1 for c in "YKMSWBDHV"} | {"R": 2}
    assert stats.iupac_total == 11
    assert mask.tolist() == [False] * 11 + [True]


@pytest.mark.parametrize("bad", [b"*", b"-", b".", b"1", b"X", b" ", b"\t", b"\n", b"\xc3", b"U", b"u"])
def test_invalid_bytes_raise_with_offset(bad):
    with pytest.raises(ab.InvalidCharacterError) as info:
        ab.encode(b"ACGT" + bad + b"ACGT")
    assert info.value.offset == 4
    assert info.value.byte == bad[0]
    assert "offset 4" in str(info.value)


def test_lenient_maps_invalid_to_n_and_counts():
    ids, mask, stats = ab.encode(b"AC*x-G", lenient=True, want_softmask=True)
    assert ids.tolist() == [ab.A_ID, ab.C_ID, ab.N_ID, ab.N_ID, ab.N_ID, ab.G_ID]
    assert stats.lenient_replacements == 3
    assert mask.tolist() == [False] * 6  # an invalid lower-case letter is not a soft-masked base
    assert stats.softmasked == 0


def test_rna_u_only_when_asked():
    ids, _, stats = ab.encode(b"ACGUu", rna=True)
    assert ids.tolist() == [ab.A_ID, ab.C_ID, ab.G_ID, ab.T_ID, ab.T_ID]
    assert stats.rna_u == 2
    with pytest.raises(ab.InvalidCharacterError) as info:
        ab.encode(b"ACGU")
    assert info.value.offset == 3


def test_accepts_bytes_like_and_uint8_arrays():
    data = b"ACGTacgtNR"
    expected = ab.encode(data)[0]
    for variant in (bytearray(data), memoryview(data), np.frombuffer(data, dtype=np.uint8)):
        assert np.array_equal(ab.encode(variant)[0], expected)
    # A strided view must work too (the table lookup does not need contiguity).
    doubled = np.frombuffer(b"".join(bytes([c, ord("x")]) for c in data), dtype=np.uint8)
    assert np.array_equal(ab.encode(doubled[::2])[0], expected)
    with pytest.raises(TypeError):
        ab.encode(np.arange(4, dtype=np.int64))


def test_returned_ids_are_writable():
    ids, _, _ = ab.encode(b"ACGT")
    ids[0] = ab.MASK_ID  # masking for MLM writes in place
    assert ids[0] == ab.MASK_ID


def test_empty_input():
    ids, mask, stats = ab.encode(b"", want_softmask=True)
    assert ids.shape == (0,) and mask.shape == (0,)
    assert stats.iupac_counts == {} and stats.softmasked == 0


@pytest.mark.parametrize("rna", [False, True])
@pytest.mark.parametrize("lenient", [False, True])
def test_matches_per_byte_oracle_on_random_bytes(rna, lenient):
    rng = np.random.default_rng(7 + 2 * rna + lenient)
    alphabet_bytes = np.frombuffer(b"ACGTNacgtnRYKMSWBDHVrykmswbdhvUuXx*-.0 \x00\xff{", dtype=np.uint8)
    for trial in range(30):
        length = int(rng.integers(0, 300))
        # mostly clean sequences (fast path), some with rare bytes (slow path)
        pool = alphabet_bytes[:10] if trial % 3 == 0 else alphabet_bytes
        data = rng.choice(pool, size=length).astype(np.uint8).tobytes()
        expected = _oracle(data, rna=rna, lenient=lenient)
        if isinstance(expected, int):
            with pytest.raises(ab.InvalidCharacterError) as info:
                ab.encode(data, rna=rna, lenient=lenient)
            assert info.value.offset == expected
            continue
        ids, mask, stats = ab.encode(data, rna=rna, lenient=lenient, want_softmask=True)
        exp_ids, exp_soft, iupac, lenient_count, softmasked, rna_u = expected
        assert ids.tolist() == exp_ids
        assert mask.tolist() == exp_soft
        assert stats.iupac_counts == iupac
        assert stats.lenient_replacements == lenient_count
        assert stats.softmasked == softmasked
        assert stats.rna_u == rna_u


def test_encoding_stats_add():
    total = ab.EncodingStats()
    total.add(ab.encode(b"RRac")[2])
    total.add(ab.encode(b"Rag*", lenient=True)[2])
    assert total.iupac_counts == {"R": 3}
    assert total.softmasked == 4
    assert total.lenient_replacements == 1


def test_decode_round_trip_and_describe_byte():
    data = b"ACGTNacgtn"
    ids, mask, _ = ab.encode(data, want_softmask=True)
    assert ab.decode(ids, mask) == data
    assert ab.decode(ids) == data.upper()
    assert ab.describe_byte(ord("*")) == "'*'"
    assert ab.describe_byte(9) == "byte 0x09"
