"""The streaming FASTA reader (genomamba.io.fasta): records, chunks, stats, and error places.

Every case is run with several block sizes, down to 1 byte, so that headers, CRLF pairs and
bad bytes falling on block boundaries are exercised.
"""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from genomamba import alphabet as ab
from genomamba.errors import InputDataError
from genomamba.io.fasta import FastaReader, read_fasta

BLOCK_SIZES = [1, 2, 3, 5, 64, 1 << 20]


def records_of(path, block_size=1 << 20, **options):
    warnings: list[str] = []
    out = [
        (r.name, r.description, ab.decode(r.ids, r.softmask), r.stats.as_dict())
        for r in read_fasta(path, block_size=block_size, warn=warnings.append, **options)
    ]
    return out, warnings


def write(tmp_path, data: bytes, name="x.fa"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("block_size", BLOCK_SIZES)
def test_records_and_stats_do_not_depend_on_block_size(tmp_path, block_size):
    data = b">chr1 first record\nACGTacgtNN\nRYAC\n\n>chr2\nggcc\n>chr3 x y\nAT"
    path = write(tmp_path, data)
    records, warnings = records_of(path, block_size)
    assert warnings == []
    assert [(n, d, s) for n, d, s, _ in records] == [
        ("chr1", "first record", b"ACGTacgtNNNNAC"),
        ("chr2", "", b"ggcc"),
        ("chr3", "x y", b"AT"),
    ]
    stats = records[0][3]
    assert stats["length"] == 14
    assert stats["base_counts"] == {"A": 3, "C": 3, "G": 2, "T": 2, "N": 4}
    assert stats["iupac_counts"] == {"R": 1, "Y": 1}
    assert stats["gc_fraction"] == pytest.approx(5 / 10)
    assert stats["softmask_fraction"] == pytest.approx(4 / 14)
    assert stats["header_line"] == 1 and records[2][3]["header_line"] == 7


@pytest.mark.parametrize("block_size", BLOCK_SIZES)
def test_crlf_missing_final_newline_and_gzip(tmp_path, block_size):
    lf = b">a\nACGT\nAC\n>b\nGG"
    crlf = lf.replace(b"\n", b"\r\n")
    expected, _ = records_of(write(tmp_path, lf, "lf.fa"))
    assert records_of(write(tmp_path, crlf, "crlf.fa"), block_size)[0] == expected
    assert records_of(write(tmp_path, gzip.compress(crlf + b"\r\n"), "crlf.fa.gz"), block_size)[0] == expected


def test_chunks_stream_a_long_record_in_pieces(tmp_path):
    rng = np.random.default_rng(1)
    seq = rng.choice(np.frombuffer(b"ACGTNacgt", np.uint8), size=100_000).tobytes()
    lines = b"\n".join(seq[i : i + 60] for i in range(0, len(seq), 60))
    path = write(tmp_path, b">long\n" + lines + b"\n")
    with FastaReader(path, block_size=4096) as reader:
        (record,) = list_first(reader)
    ids, mask, _ = ab.encode(seq, want_softmask=True)
    assert np.array_equal(record[0], ids) and np.array_equal(record[1], mask)
    assert record[2] > 20  # it really came in many chunks, each with its start position


def list_first(reader):
    out = []
    for record in reader.records():
        chunks = list(record.chunks())
        starts = [c.start for c in chunks]
        assert starts == list(np.cumsum([0] + [c.ids.size for c in chunks[:-1]]))
        out.append(
            (
                np.concatenate([c.ids for c in chunks]),
                np.concatenate([c.softmask for c in chunks]),
                len(chunks),
            )
        )
    return out


def test_unconsumed_record_is_skipped_cleanly(tmp_path):
    path = write(tmp_path, b">a\nAAAA\nAAAA\n>b\nCC\n")
    with FastaReader(path, block_size=3) as reader:
        names = [r.name for r in reader.records()]  # chunks never read
    assert names == ["a", "b"]


@pytest.mark.parametrize("block_size", BLOCK_SIZES)
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b">a\nACGT\nAC*T\n", "record 'a', line 3, column 3: invalid character '*'"),
        (b">a\nACGT\nAC T\n", "record 'a', line 3, column 3: invalid character ' ' (whitespace"),
        (b">a\r\nACGT\r\nACG\tT\r\n", "record 'a', line 3, column 4: invalid character byte 0x09"),
        (b">a\nAC\n>b\nACGU\n", "record 'b', line 4, column 4: invalid character 'U' (RNA?"),
        (
            b">a\nACGT\r\nAC\n",
            "record 'a', line 2, column 5: carriage return (CR) in a record whose header line ends with LF",
        ),
        (
            b">a\nAC\rGT\n",
            "record 'a', line 2, column 3: carriage return (CR) in a record whose header line ends with LF",
        ),
        (b">a\r\nAC\r\nGT\nAA\r\n", "record 'a', line 3, column 3: LF line ending in a record whose header"),
        (b">a\r\nAC\rGT\r\n", "record 'a', line 2, column 3: bare carriage return"),
        (b">a\nAC\n>a\nGG\n", "duplicate record name 'a' (lines 1 and 3)"),
        (b">\nACGT\n", "line 1: header line '>' has no record name"),
        (b"> a\nACGT\n", "line 1: header line '>' has no record name"),
        (b"\n\nhello\n>a\nAC\n", "line 3, column 1: text before the first '>' header ('hello')"),
        (b"@read1\nACGT\n+\nIIII\n", "line 1: this looks like FASTQ"),
        (b"", "empty file"),
        (b"\n\n", "only blank lines"),
        (b">a\n>b\n", "no record has any sequence (2 empty record(s) skipped)"),
    ],
)
def test_errors_name_the_place(tmp_path, data, message, block_size):
    path = write(tmp_path, data)
    with pytest.raises(InputDataError) as info:
        records_of(path, block_size)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_empty_records_warn_or_fail_under_strict(tmp_path):
    path = write(tmp_path, b">a\n>b\n\n>c\nAC\n")
    records, warnings = records_of(path)
    assert [r[0] for r in records] == ["c"]
    assert warnings == [
        f"{path}: record 'a' (line 1) has no sequence; skipped",
        f"{path}: record 'b' (line 2) has no sequence; skipped",
    ]
    with pytest.raises(InputDataError, match=r"record 'a' \(line 1\) has no sequence \(--strict\)"):
        records_of(path, strict=True)


def test_bom_is_stripped_with_a_warning(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbf>a\nAC\n")
    records, warnings = records_of(path, block_size=1)
    assert records[0][0] == "a"
    assert warnings == [f"{path}: UTF-8 byte-order mark before the first '>' removed"]


def test_lenient_rna_and_report_modes(tmp_path):
    path = write(tmp_path, b">a\nAC*-.1xU\n")
    with pytest.raises(InputDataError):
        records_of(path)
    records, _ = records_of(path, lenient=True)
    assert records[0][2] == b"ACNNNNNN"
    assert records[0][3]["lenient_replacements"] == 6
    records, _ = records_of(path, lenient=True, rna=True)
    assert records[0][2] == b"ACNNNNNT" and records[0][3]["rna_u"] == 1
    with FastaReader(path, report_invalid=True) as reader:
        for record in reader.records():
            assert sum(c.ids.size for c in record.chunks()) == 8
    assert record.stats.invalid_count == 6
    assert record.stats.first_invalid.startswith("line 2, column 3: invalid character '*'")


def test_all_n_record_is_kept_and_flagged(tmp_path):
    records, _ = records_of(write(tmp_path, b">gap\nNNNN\nnn\n"))
    stats = records[0][3]
    assert stats["n_fraction"] == 1.0 and stats["gc_fraction"] is None
    assert "all N" in stats["problems"]


def test_header_over_limit_is_not_fasta(tmp_path, monkeypatch):
    import genomamba.io.fasta as fasta

    monkeypatch.setattr(fasta, "MAX_HEADER_BYTES", 10)
    with pytest.raises(InputDataError, match="header over 1 MiB long"):
        records_of(write(tmp_path, b">" + b"a" * 500 + b"\nAC\n"), block_size=4)
