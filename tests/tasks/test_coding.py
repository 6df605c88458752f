"""The demo task builder (genomamba.tasks.coding) on the committed yeast genome and annotation."""

from __future__ import annotations

from collections import Counter

import pytest

from genomamba.errors import InputDataError
from genomamba.io.labels import read_labelled
from genomamba.tasks.coding import coding_task, read_gff3_intervals, write_task_csv


@pytest.fixture(scope="module")
def yeast(demo_data):
    return demo_data / "yeast_chrI_chrII.fa", demo_data / "yeast_chrI_chrII.gff3"


def test_windows_are_labelled_from_the_annotation(yeast, tmp_path):
    fasta, gff3 = yeast
    rows = coding_task(fasta, gff3, window=200, per_class=150, test_chroms=("chrI",), seed=3)
    counts = Counter((r["split"], r["label"]) for r in rows)
    assert counts == {
        ("train", "coding"): 150,
        ("train", "intergenic"): 150,
        ("test", "coding"): 150,
        ("test", "intergenic"): 150,
    }
    features = read_gff3_intervals(gff3)
    cds = features["chrII"]["CDS"]
    # SGD chrII: the CDS of YBL113C is at 1-based 280-2,658 (0-based [279, 2658)) in the GFF3
    assert (279, 2658) in cds
    for row in rows:
        chrom, span = row["id"].split(":")
        start, end = (int(x) for x in span.split("-"))
        start -= 1  # id is samtools-style, 1-based inclusive
        assert end - start == 200 and len(row["sequence"]) == 200
        assert row["split"] == ("test" if chrom == "chrI" else "train")
        assert row["group"] == f"{chrom}:{start // 50_000 * 50_000 + 1}"
        if row["label"] == "coding":
            assert any(a <= start and end <= b for a, b in features[chrom]["CDS"])
        else:
            genic = [
                (a, b)
                for kind, spans in features[chrom].items()
                if kind not in ("chromosome", "region", "ARS", "binding_site", "nucleotide_match")
                for a, b in spans
            ]
            assert not any(a < end and start < b for a, b in genic)
    # the CSV reads back through the labelled-data reader with the same rows
    data = read_labelled(str(write_task_csv(rows, tmp_path / "task.csv")))
    assert data.ids == [r["id"] for r in rows] and data.splits == [r["split"] for r in rows]


def test_balanced_to_the_rarer_class_and_seeded(yeast):
    fasta, gff3 = yeast
    rows = coding_task(fasta, gff3, window=200, per_class=None)
    counts = Counter(r["label"] for r in rows)
    assert counts["coding"] == counts["intergenic"] > 500
    again = coding_task(fasta, gff3, window=200, per_class=100, seed=1)
    assert again == coding_task(fasta, gff3, window=200, per_class=100, seed=1)
    assert again != coding_task(fasta, gff3, window=200, per_class=100, seed=2)


def test_errors_name_the_file(yeast, tmp_path):
    fasta, gff3 = yeast
    with pytest.raises(InputDataError, match="no record named 'chrX'"):
        coding_task(fasta, gff3, test_chroms=("chrX",))
    bad = tmp_path / "bad.gff3"
    bad.write_text("##gff-version 3\nchrI\tSGD\tCDS\t10\n")
    with pytest.raises(InputDataError, match=r"bad.gff3: line 2: a GFF3 feature line has 9"):
        coding_task(fasta, bad)
    bad.write_text("chrI\tSGD\tCDS\tten\t20\t.\t+\t0\t.\n")
    with pytest.raises(InputDataError, match=r"bad.gff3: line 1: start/end \(columns 4-5\) must be integers"):
        coding_task(fasta, bad)
    bad.write_text("chrI\tSGD\tgene\t1\t230208\t.\t+\t.\t.\n")
    with pytest.raises(InputDataError, match="no coding window of 200 bases in the train split"):
        coding_task(fasta, bad)
