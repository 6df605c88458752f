"""Region selection (genomamba.io.regions), segment windowing and `genomamba tokenize --region /
--exclude-region`: held-out and training windows partition a genome exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from genomamba.cli import main
from genomamba.errors import InputDataError
from genomamba.io.regions import RegionSelection, parse_region
from genomamba.io.shards import TokenShards
from genomamba.io.tokenize import TokenizeOptions, tokenize_files
from genomamba.io.windows import SegmentWindower, Windower
from tests.io.test_tokenize import assert_windows_match_pyfaidx, random_genome

LENGTHS = (5000, 1234, 77)  # random_genome's records rec0, rec1, rec2


@pytest.mark.parametrize(("text", "expected"), [
    ("chrX", ("chrX", None, None)), ("X:62,000,001-69,999,930", ("X", 62_000_000, 69_999_930)),
    ("chr1:1-10", ("chr1", 0, 10)), ("chr1:1,001-2,000", ("chr1", 1000, 2000)),
    ("HLA-A*01:01:01:01", ("HLA-A*01:01:01:01", None, None)), ("HLA-A*01:01:5-6", ("HLA-A*01:01", 4, 6)),
    (" chrM:7-7 ", ("chrM", 6, 7)),
])
def test_parse_region(text, expected):
    assert parse_region(text) == expected


@pytest.mark.parametrize("text", ["chr1:0-5", "chr1:6-5", ""])
def test_bad_regions_are_usage_errors(text):
    with pytest.raises(ValueError, match="region"):
        parse_region(text)


@pytest.mark.parametrize(
    ("include", "exclude", "record", "segments"),
    [
        ((), (), "rec0", [(0, None)]),
        (("rec0:11-20", "rec0:15-30", "rec0:101-110"), (), "rec0", [(10, 30), (100, 110)]),
        (("rec0:11-20",), (), "rec1", []),
        (("rec0", "rec0:11-20"), (), "rec0", [(0, None)]),
        ((), ("rec0:11-20", "rec0:21-30"), "rec0", [(0, 10), (30, None)]),
        ((), ("rec0:1-10", "rec0:101-110"), "rec0", [(10, 100), (110, None)]),
        ((), ("rec1",), "rec1", []),
        ((), ("rec1",), "rec0", [(0, None)]),
    ],
)
def test_segments(include, exclude, record, segments):
    assert RegionSelection(include, exclude).segments(record) == segments


def test_selection_rejects_both_lists_and_checks_records():
    with pytest.raises(ValueError, match="not both"):
        RegionSelection(["a"], ["b"])
    selection = RegionSelection(["rec0:1-10", "chrZ"])
    with pytest.raises(InputDataError, match="region chrZ: no record named 'chrZ' in g.fa"):
        selection.check({"rec0": 100}, "g.fa")
    with pytest.raises(InputDataError, match=r"region rec0:1-10: runs past the end of 'rec0' \(5 bases\)"):
        selection.check({"rec0": 5, "chrZ": 1}, "g.fa")


@pytest.mark.parametrize("chunk", [7, 64, 1000])
def test_segment_windower_cuts_each_segment_from_its_own_start(chunk):
    ids = np.arange(500, dtype=np.int64).astype(np.uint8)
    segments = [(0, 120), (130, 200), (450, None)]
    windower = SegmentWindower(segments, 50, 50, "keep")
    got = []
    for start in range(0, ids.size, chunk):
        got += [(w.start, w.end, bytes(w.ids)) for w in windower.feed(start, ids[start : start + chunk])]
    got += [(w.start, w.end, bytes(w.ids)) for w in windower.finish()]
    spans = [(0, 50), (50, 100), (100, 120), (130, 180), (180, 200), (450, 500)]
    assert got == [(s, e, bytes(ids[s:e])) for s, e in spans]
    whole = SegmentWindower([(0, None)], 64, 40, "shift")
    plain = Windower(64, 40, "shift")
    assert [(w.start, w.end) for w in [*whole.feed(0, ids), *whole.finish()]] == [
        (w.start, w.end) for w in [*plain.feed(ids), *plain.finish()]
    ]


def test_region_and_exclude_region_partition_the_genome(tmp_path):
    fasta = random_genome(tmp_path / "g.fa", lengths=LENGTHS)
    held_out = ("rec0:4001-5000", "rec2")
    train, val = tmp_path / "train", tmp_path / "val"
    tokenize_files([fasta], train, TokenizeOptions(window=700, exclude_regions=held_out))
    tokenize_files([fasta], val, TokenizeOptions(window=700, regions=held_out))
    covered = {name: np.zeros(n, np.int8) for name, n in zip(("rec0", "rec1", "rec2"), LENGTHS, strict=True)}
    for directory in (train, val):
        shards = assert_windows_match_pyfaidx(directory, [fasta])  # the bases are the genome's
        for i in range(len(shards)):
            record, start, end = shards.coordinates(i)
            covered[record][start:end] += 1
    assert all((c == 1).all() for c in covered.values())  # every base exactly once, in one of the two
    val_shards = TokenShards(val)
    windows = {val_shards.coordinates(i) for i in range(len(val_shards))}
    assert windows == {("rec0", 4000, 4700), ("rec0", 4700, 5000), ("rec2", 0, 77)}
    manifest = json.loads((val / "manifest.json").read_text())
    assert manifest["parameters"]["regions"] == list(held_out)
    assert manifest["totals"]["bases"] == 1000 + 77 and manifest["totals"]["records"] == 2
    assert [r["segments"] for r in manifest["records"]] == [[[4000, 5000]], [[0, 77]]]


def test_parameters_without_regions_are_unchanged(tmp_path):
    fasta = random_genome(tmp_path / "g.fa", lengths=LENGTHS)
    result = tokenize_files([fasta], tmp_path / "all", TokenizeOptions(window=700))
    assert "regions" not in result.manifest["parameters"]
    assert "exclude_regions" not in result.manifest["parameters"]


@pytest.mark.parametrize(
    ("regions", "message"),
    [(("recX:1-10",), "no record named 'recX'"), (("rec2:1-100",), "runs past the end of 'rec2'")],
)
def test_bad_region_is_invalid_input_and_leaves_nothing(tmp_path, regions, message):
    fasta = random_genome(tmp_path / "g.fa", lengths=LENGTHS)
    with pytest.raises(InputDataError, match=message):
        tokenize_files([fasta], tmp_path / "out", TokenizeOptions(window=700, regions=regions))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.fa"]


def test_cli_region_options(tmp_path):
    fasta = random_genome(tmp_path / "g.fa", lengths=LENGTHS)
    runner = CliRunner()
    out = ["tokenize", str(fasta), "-o", str(tmp_path / "x")]
    both = runner.invoke(main, [*out, "--region", "rec0", "--exclude-region", "rec1"])
    assert both.exit_code == 2 and "cannot be used together" in both.stderr
    bad = runner.invoke(main, [*out, "--region", "rec0:5-1"])
    assert bad.exit_code == 2 and "START must be at least 1 and at most END" in bad.stderr
    missing = runner.invoke(main, [*out, "--region", "recX"])
    assert missing.exit_code == 65 and "no record named 'recX'" in missing.stderr
    ok = runner.invoke(
        main, ["tokenize", str(fasta), "-o", str(tmp_path / "v"), "--window", "700", "--region", "rec1:1-700"]
    )
    assert ok.exit_code == 0, ok.stderr
    assert [TokenShards(tmp_path / "v").coordinates(0)] == [("rec1", 0, 700)]
