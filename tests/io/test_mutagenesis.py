"""Saturation mutagenesis of genome regions: the region syntax, the alleles of every position."""

from __future__ import annotations

import re

import pytest

from genomamba.errors import InputDataError
from genomamba.io.indexed import IndexedFasta
from genomamba.io.mutagenesis import parse_region, saturation_alleles


@pytest.mark.parametrize("text, expected", [
    ("chr1:1-10", ("chr1", 0, 10)), ("chr1:1,001-2,000", ("chr1", 1000, 2000)),
    ("chr1", ("chr1", None, None)),
    ("HLA-A*01:01:01:01", ("HLA-A*01:01:01:01", None, None)), ("HLA-A*01:01:5-6", ("HLA-A*01:01", 4, 6)),
    (" chrM:7-7 ", ("chrM", 6, 7)),
])
def test_parse_region(text, expected):
    assert parse_region(text) == expected


@pytest.mark.parametrize("text", ["chr1:0-5", "chr1:6-5", ""])
def test_bad_regions_are_usage_errors(text):
    with pytest.raises(ValueError, match="region"):
        parse_region(text)


@pytest.fixture
def genome(tmp_path):
    path = tmp_path / "g.fa"
    path.write_text(">chr1\nACgNT\n>HLA-A*01:01\nGG\n")
    with IndexedFasta(path) as fasta:
        yield fasta


def test_every_position_gives_its_three_substitutions(genome):
    sites = list(saturation_alleles(genome, "chr1:2-5"))
    assert [[(v.position, v.ref, v.alt) for v in site] for site in sites] == [
        [(1, "C", "A"), (1, "C", "G"), (1, "C", "T")],
        [(2, "G", "A"), (2, "G", "C"), (2, "G", "T")],  # lower case in the genome: read as G
        [(3, "N", "N")],  # an N position: one allele the scorer counts as ambiguous
        [(4, "T", "A"), (4, "T", "C"), (4, "T", "G")],
    ]
    assert {v.where for site in sites for v in site} == {"region chr1:2-5"}


def test_a_whole_record_whose_name_has_colons(genome):
    assert len(list(saturation_alleles(genome, "HLA-A*01:01"))) == 2


@pytest.mark.parametrize("region, message", [
    ("chr2:1-2", "no record named 'chr2'"), ("chr1:4-6", "runs past the end of 'chr1' (5 bases)"),
])
def test_regions_off_the_genome_are_input_errors(genome, region, message):
    with pytest.raises(InputDataError, match=re.escape(message)):
        list(saturation_alleles(genome, region))
