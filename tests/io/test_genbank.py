"""GenBank input (genomamba.io.genbank): recognised by content under any compression, read as the
same records as FASTA by the streaming reader and by random access, bad files named."""

from __future__ import annotations

import bz2
import gzip
import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from Bio import SeqIO, bgzf
from Bio.Seq import Seq
from Bio.SeqRecord import SeqRecord
from click.testing import CliRunner

from genomamba import alphabet as ab
from genomamba.cli import main
from genomamba.errors import InputDataError
from genomamba.io.fasta import FastaReader, read_fasta
from genomamba.io.genbank import is_genbank, starts_like_genbank
from genomamba.io.indexed import IndexedFasta

#: A real annotated RefSeq record, gzip-compressed as shipped (provenance: tests/data/README.md).
PLASMID = Path(__file__).resolve().parents[1] / "data" / "NC_007719.gbk.gz"
PLASMID_SHA256 = "a0bf0f3b81c98140fb5688f52c786f9bad61992024b4a22981b1b1b1f7b14290"


def origin_sequence(text: str) -> str:
    """The bases of the first record's ORIGIN block, read the plain way: each line after ORIGIN
    up to ``//`` is a position number and groups of bases."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("ORIGIN"))
    body = []
    for line in lines[start + 1 :]:
        if line.startswith("//"):
            break
        body.extend(line.split()[1:])
    return "".join(body)


def genbank_text(*records: tuple[str, str]) -> str:
    """GenBank text of ``(accession.version, sequence)`` records, as Biopython writes it (lower case)."""
    handle = io.StringIO()
    SeqIO.write([SeqRecord(Seq(seq), id=rid, name=rid.split(".")[0], description=f"record {rid}",
                           annotations={"molecule_type": "DNA"}) for rid, seq in records], handle, "genbank")
    return handle.getvalue()


def write(tmp_path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_real_plasmid_reads_as_its_origin_block():
    text = gzip.decompress(PLASMID.read_bytes()).decode()
    expected = origin_sequence(text)
    assert len(expected) == 5104 and expected.islower()
    with FastaReader(PLASMID) as reader:
        (record,) = [(r.name, r.description, r.header_line, list(r.chunks()), r.stats)
                     for r in reader.records()]
        assert reader.compression == "gzip" and reader.sha256 == PLASMID_SHA256
    name, description, line, chunks, stats = record
    assert name == "NC_007719.1" and line == 1
    assert description == "Aster yellows witches'-broom phytoplasma AYWB plasmid pAYWB-III, complete sequence"
    ids = np.concatenate([c.ids for c in chunks])
    assert ab.decode(ids).decode() == expected.upper()
    # GenBank's lower case is its convention, not soft-masking
    assert not any(c.softmask.any() for c in chunks) and stats.softmask_fraction == 0.0
    assert stats.base_counts == {**{b: n for b, n in Counter(expected.upper()).items()}, "N": 0}


@pytest.mark.parametrize("block_size", [7, 64, 1 << 20])
def test_random_access_and_streaming_agree_under_every_compression(tmp_path, block_size):
    text = gzip.decompress(PLASMID.read_bytes())
    plain = tmp_path / "p.gb"
    plain.write_bytes(text)
    (tmp_path / "p.gb.bz2").write_bytes(bz2.compress(text))
    with bgzf.BgzfWriter(str(tmp_path / "p.gb.bgz"), "wb") as handle:
        handle.write(text)
    expected = origin_sequence(text.decode()).upper().encode()
    for path in (PLASMID, plain, tmp_path / "p.gb.bz2", tmp_path / "p.gb.bgz"):
        assert is_genbank(path)
        (record,) = read_fasta(path, block_size=block_size)
        assert ab.decode(record.ids) == expected
        with IndexedFasta(path) as genome:  # plain gzip too: nothing is read at random on disk
            assert genome.lengths == {"NC_007719.1": 5104}
            assert genome.fetch("NC_007719.1", 1000, 1060) == expected[1000:1060]
            ids, softmask = genome.fetch_ids("NC_007719.1", 5090, 5104)
            assert ab.decode(ids) == expected[5090:] and not softmask.any()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.gb", "p.gb.bgz", "p.gb.bz2"]  # no index beside


def test_detection_is_by_content(tmp_path):
    # LOCUS first, but not the LOCUS line of a record: Biopython would skip it and find nothing
    odd = write(tmp_path, "odd.fa", "\nLOCUS  x\n>x\nACGT\n")
    with pytest.raises(InputDataError, match=r"odd.fa: line 2 starts with LOCUS, but no GenBank record"):
        list(read_fasta(odd))
    assert starts_like_genbank(b"\n\n  \nLOCUS       X 10 bp DNA\n")
    assert starts_like_genbank(b"\xef\xbb\xbfLOCUS       X")
    assert not starts_like_genbank(b">LOCUS\nACGT\n")
    assert not starts_like_genbank(b"  LOCUS indented\n")
    assert not starts_like_genbank(b"")


def test_iupac_codes_lower_case_and_records_without_sequence(tmp_path):
    text = genbank_text(("AB000001.1", "acgtRYacgtNNkm"), ("AB000002.2", "ggccaatt"))
    # a CONTIG record (a sequence assembled from others) has no ORIGIN block
    contig = ("LOCUS       AB000003                  10 bp    DNA     linear   UNK 01-JAN-1980\n"
              "DEFINITION  assembled.\nACCESSION   AB000003\nVERSION     AB000003.1\n"
              "FEATURES             Location/Qualifiers\nCONTIG      join(AB000001.1:1..10)\n//\n")
    path = write(tmp_path, "m.gbk", text + contig)
    warnings: list[str] = []
    records = list(read_fasta(path, warn=warnings.append))
    assert [(r.name, ab.decode(r.ids).decode()) for r in records] == [
        ("AB000001.1", "ACGTNNACGTNNNN"), ("AB000002.2", "GGCCAATT")]
    assert records[0].stats.encoding.iupac_counts == {"R": 1, "Y": 1, "K": 1, "M": 1}
    assert records[0].stats.base_counts["N"] == 6 and records[0].stats.header_line == 1
    second_locus = [i for i, line in enumerate(text.split("\n"), start=1) if line.startswith("LOCUS")][1]
    assert records[1].stats.header_line == second_locus
    contig_line = len(text.splitlines()) + 1
    assert warnings == [f"{path}: record 'AB000003.1' (line {contig_line}) has no sequence; skipped"]
    with pytest.raises(InputDataError, match=r"record 'AB000003.1' .* has no sequence \(--strict\)"):
        list(read_fasta(path, strict=True))
    with IndexedFasta(path) as genome:
        assert genome.lengths == {"AB000001.1": 14, "AB000002.2": 8}


def _edit(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize("change, message", [
    # the file ends inside the ORIGIN block (line 11): a truncated download
    (lambda t: t[: t.index("//")], "line 11: not valid GenBank: Premature end of file in sequence data"),
    # the LOCUS line promises more bases than the ORIGIN block holds (found at the '//', line 12)
    (lambda t: _edit(t, "  24 bp", "  25 bp"),
     "line 12: not valid GenBank: Expected sequence length 25, found 24"),
    # a sequence line that is not "position bases..."
    (lambda t: _edit(t, "       1 acgtacgtac", "1acgtacgtacgt"),
     "line 11: not valid GenBank: Sequence line mal-formed"),
    # the header stops before the feature table or the sequence
    (lambda t: t[: t.index("FEATURES")] + "//\n",
     "line 9: not valid GenBank: Premature end of sequence data"),
    (lambda t: _edit(t, "  24 bp", "  xx bp"), r"line 1: not valid GenBank: invalid literal for int\(\)"),
])
def test_malformed_files_name_file_record_and_line(tmp_path, change, message):
    path = write(tmp_path, "bad.gb", change(genbank_text(("AB000001.1", "acgtacgtac" * 2 + "acgt"))))
    expected = rf"^{path}: record 'AB000001' \(LOCUS line 1\), {message}"
    with pytest.raises(InputDataError, match=expected):
        list(read_fasta(path))
    with pytest.raises(InputDataError, match=expected):
        IndexedFasta(path)


def test_invalid_characters_duplicates_and_protein(tmp_path):
    text = genbank_text(("AB000001.1", "acgtacgtac" * 7))
    bad = write(tmp_path, "bad.gb", _edit(text, "       61 acgtacgtac", "       61 acgt*cgtac"))
    where = r"record 'AB000001.1', sequence position 65 \(ORIGIN at line 10\)"
    with pytest.raises(InputDataError, match=rf"^{bad}: {where}: invalid character '\*' \(pass --lenient"):
        list(read_fasta(bad))
    (lenient,) = read_fasta(bad, lenient=True)
    assert ab.decode(lenient.ids)[64:65] == b"N" and lenient.stats.encoding.lenient_replacements == 1
    with FastaReader(bad, report_invalid=True) as reader:  # genomamba validate's mode
        for record in reader.records():
            assert sum(chunk.ids.size for chunk in record.chunks()) == 70
            assert record.stats.invalid_count == 1
            assert record.stats.first_invalid.startswith("sequence position 65 (ORIGIN at line 10)")
    twice = write(tmp_path, "twice.gb", text + text)
    with pytest.raises(InputDataError, match=r"duplicate record name 'AB000001.1' \(LOCUS lines 1 and 14\)"):
        list(read_fasta(twice))
    protein = SeqRecord(Seq("MKV"), id="P1.1", name="P1", description="p",
                        annotations={"molecule_type": "protein"})
    handle = io.StringIO()
    SeqIO.write([protein], handle, "genbank")
    with pytest.raises(InputDataError, match=r"record 'P1.1' \(LOCUS line 1\) is a protein sequence"):
        list(read_fasta(write(tmp_path, "p.gb", handle.getvalue())))


def test_a_truncated_gzip_file_is_named_as_such(tmp_path):
    path = tmp_path / "cut.gb.gz"
    path.write_bytes(PLASMID.read_bytes()[:3000])
    with pytest.raises(InputDataError, match="truncated gzip stream"):
        list(read_fasta(path))


def test_the_commands_read_genbank(tmp_path):
    """validate, tokenize and make-task on the real plasmid (CLI, through the streaming reader)."""
    from Bio import SeqIO as seqio

    from genomamba.io.tokenize import TokenizeOptions, tokenize_files

    result = CliRunner().invoke(main, ["validate", "--format", "tsv", str(PLASMID)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[1].split("\t")[1:4] == ["NC_007719.1", "5104", "0.2177"]
    cut = tmp_path / "cut.gb"
    cut.write_bytes(gzip.decompress(PLASMID.read_bytes())[:9000])
    result = CliRunner().invoke(main, ["validate", str(cut)])
    assert result.exit_code == 65 and "Traceback" not in result.stderr
    assert result.stderr == (f"error: {cut}: record 'NC_007719' (LOCUS line 1), line 174: not valid GenBank: "
                             "Premature end of file in sequence data\n")  # the last line read

    manifest = tokenize_files([PLASMID], tmp_path / "shards", TokenizeOptions(window=1000)).manifest
    assert manifest["totals"]["windows"] == 6 and manifest["records"][0]["record"] == "NC_007719.1"

    # make-task with a GFF3 of the record's own CDS features: windows inside one are 'coding'
    from genomamba.tasks.coding import coding_task

    with gzip.open(PLASMID, "rt") as handle:
        record = next(seqio.parse(handle, "genbank"))
    cds = [f for f in record.features if f.type == "CDS"]
    gff3 = tmp_path / "p.gff3"
    gff3.write_text("##gff-version 3\n" + "".join(
        f"NC_007719.1\tRefSeq\tCDS\t{int(f.location.start) + 1}\t{int(f.location.end)}\t.\t"
        f"{'+' if f.location.strand == 1 else '-'}\t0\tID=cds{i}\n" for i, f in enumerate(cds)))
    rows = coding_task(PLASMID, gff3, window=100, per_class=None)
    sequence = str(record.seq).upper()
    for row in rows:
        start, end = (int(x) for x in row["id"].split(":")[1].split("-"))
        assert row["sequence"] == sequence[start - 1 : end]
        inside = any(f.location.start <= start - 1 and end <= f.location.end for f in cds)
        assert inside == (row["label"] == "coding")
    assert {row["label"] for row in rows} == {"coding", "intergenic"}


def test_the_readers_and_writers_added_here_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, genomamba.io.genbank, genomamba.io.fasta, genomamba.io.indexed, "
            "genomamba.io.vcf_output; list(genomamba.io.fasta.read_fasta(sys.argv[1])); "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code, str(PLASMID)]).returncode == 0
