"""Saturation mutagenesis of genome regions: the alleles of every position (the region syntax:
tests/io/test_regions.py)."""

from __future__ import annotations

import re

import pytest

from genomamba.errors import InputDataError
from genomamba.io.indexed import IndexedFasta
from genomamba.tasks.mutagenesis import saturation_alleles


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
