"""genomamba.io.bed: BED columns by header or position, every line checked against the genome."""

from __future__ import annotations

import pytest

from genomamba import alphabet as ab
from genomamba.errors import InputDataError
from genomamba.io.bed import interval_ids, intervals, parse_bed, standard_columns
from genomamba.io.indexed import IndexedFasta

LENGTHS = {"chr1": 20, "chr2": 10}


def _parse(tmp_path, text):
    path = tmp_path / "x.bed"
    path.write_text(text)
    return parse_bed(path, required=(), headerless=standard_columns(path))


def test_headerless_bed3_to_bed6_are_named_by_position(tmp_path):
    bed = _parse(tmp_path, "track name=x\nchr1\t0\t4\tp1\t0\t-\n# note\nchr2\t5\t10\tp2\t3\t+\n")
    assert bed.names == ["chrom", "start", "end", "name", "score", "strand"]
    got = [(i.chrom, i.start, i.end, i.strand, i.fields["name"]) for i in intervals(bed, LENGTHS, "g.fa")]
    assert got == [("chr1", 0, 4, "-", "p1"), ("chr2", 5, 10, "+", "p2")]
    bed3 = _parse(tmp_path, "chr1\t2\t3\n")
    assert [i.strand for i in intervals(bed3, LENGTHS, "g.fa")] == ["+"]


def test_a_header_line_names_the_columns(tmp_path):
    bed = _parse(tmp_path, "#chr\tchromStart\tchromEnd\tid\textra\nchr1\t1\t2\tr\tz\n")
    (interval,) = intervals(bed, LENGTHS, "g.fa")
    got = (interval.chrom, interval.start, interval.fields["name"], interval.fields["extra"])
    assert got == ("chr1", 1, "r", "z")


@pytest.mark.parametrize("text, message", [
    ("", "empty file: no BED intervals"),
    ("chr1\t0\n", "line 1: 2 column(s); BED has 3 to 12"),
    ("chr1\t0\t4\nchr1\t0\t4\tx\n", "line 2: 4 tab-separated column(s), expected 3"),
    ("chr1\t0\t21\n", "line 1: interval chr1:0-21 runs past the end of 'chr1' (length 20) in g.fa"),
    ("chrX\t0\t4\n", "line 1: chromosome 'chrX' is not in the genome g.fa"),
    ("chr1\t4\t4\n", "line 1: need 0 <= start < end"),
    ("chr1\t0\t4\tn\t0\t*\n", "line 1: strand must be +, - or ., got '*'"),
    ("#chrom\tstart\n", "missing column(s) 'end'"),
])
def test_bad_lines_name_file_and_line(tmp_path, text, message):
    with pytest.raises(InputDataError, match="x.bed: ") as info:
        list(intervals(_parse(tmp_path, text), LENGTHS, "g.fa"))
    assert message in str(info.value)


def test_interval_ids_read_the_minus_strand_as_its_reverse_complement(tmp_path):
    genome = tmp_path / "g.fa"
    genome.write_text(">chr1\nAACGTTTGCA\n")
    bed = _parse(tmp_path, "chr1\t0\t4\t.\t0\t-\nchr1\t0\t4\t.\t0\t+\n")
    with IndexedFasta(genome) as fasta:
        minus, plus = (interval_ids(fasta, i, genome)[0] for i in intervals(bed, fasta.lengths, genome))
    assert ab.decode(plus) == b"AACG" and ab.decode(minus) == b"CGTT"


def test_comments_before_the_first_interval_and_chromosomes_named_like_track_lines(tmp_path):
    # found by tests/io/test_fuzz_readers.py: a leading '# comment' was taken for the first data line
    # (its one column made the file an error), and a chromosome 'track7' or 'browser2' had its lines
    # dropped without a word, as if they were track lines
    lengths = {"chr1": 20, "track7": 10, "browser2": 10}
    bed = _parse(tmp_path, "# made by hand\n#\ttwo\nbrowser position chr1:1-5\ntrack name=x\n"
                           "track7\t0\t4\nbrowser2\t1\t2\nchr1\t3\t9\n")
    assert bed.names == ["chrom", "start", "end"]
    assert [(i.chrom, i.start, i.end) for i in intervals(bed, lengths, "g.fa")] == [
        ("track7", 0, 4), ("browser2", 1, 2), ("chr1", 3, 9)]
    header_after_comment = _parse(tmp_path, "# made by hand\n#chrom\tstart\tend\tname\ntrack7\t0\t4\tr\n")
    assert [i.fields["name"] for i in intervals(header_after_comment, lengths, "g.fa")] == ["r"]
    with pytest.raises(InputDataError, match="x.bed: no BED intervals, only '#' comment lines"):
        _parse(tmp_path, "# nothing\n# here\n")
