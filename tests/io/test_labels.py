"""Labelled inputs (genomamba.io.labels): sequences, labels, groups and splits of every format, and
the task their labels pose once read (the task rules themselves: tests/tasks/test_targets.py)."""

from __future__ import annotations

import gzip
import subprocess
import sys

import pytest

from genomamba import alphabet as ab
from genomamba.errors import InputDataError
from genomamba.io.labels import input_format, parse_input, read_labelled
from genomamba.tasks.targets import TaskSpec, encode_targets, infer_task

GENOME = ">chr1\nACGTACGTAC\nGGGGCCCCAA\n>chr2\nTTTTTAAAAA\n"


def ids(text: str) -> list[int]:
    return ab.encode(text.encode())[0].tolist()


@pytest.fixture
def genome(tmp_path):
    path = tmp_path / "genome.fa"
    path.write_text(GENOME)
    return path


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_with_every_column(tmp_path):
    path = write(
        tmp_path,
        "a.csv",
        "id,sequence,label,group,split,note\n"
        "s1,ACGT,yes,g1,train,x\n"
        "\n"
        's2,"acgtRY",no,g1,validation,y\n'
        "s3,NNAC,yes,g2,test,\n",
    )
    data = read_labelled(str(path))
    assert data.ids == ["s1", "s2", "s3"]
    assert [s.tolist() for s in data.sequences] == [ids("ACGT"), ids("ACGTNN"), ids("NNAC")]
    assert data.labels == ["yes", "no", "yes"]
    assert data.groups == ["g1", "g1", "g2"]
    assert data.splits == ["train", "val", "test"]
    assert data.sources == [f"{path}: line 2", f"{path}: line 4", f"{path}: line 5"]
    sub = data.subset([2, 0])
    assert sub.ids == ["s3", "s1"] and sub.sources[0].endswith("line 5")


def test_tsv_gzip_defaults_and_multilabel(tmp_path):
    path = tmp_path / "m.tsv.gz"
    path.write_bytes(gzip.compress(b"label\tsequence\nTF1;TF2\tACGT\nTF2\tCCCC\n\tGGGG\n"))
    data = read_labelled(str(path))
    assert data.ids == ["m.tsv.gz:2", "m.tsv.gz:3", "m.tsv.gz:4"]
    assert data.groups == data.ids and data.splits == [None] * 3
    spec = infer_task(data)
    assert spec == TaskSpec("multilabel", ("TF1", "TF2"))
    assert encode_targets(data, spec).tolist() == [[1, 1], [0, 1], [0, 0]]


def test_bed_headerless_and_with_header(tmp_path, genome):
    bed4 = write(tmp_path, "a.bed", "track name=x\nchr1\t0\t4\tup\nchr2\t5\t10\tdown\n")
    data = read_labelled(str(bed4), genome=genome)
    assert [s.tolist() for s in data.sequences] == [ids("ACGT"), ids("AAAAA")]
    assert data.labels == ["up", "down"] and data.groups == ["chr1", "chr2"]
    assert data.ids == ["chr1:1-4", "chr2:6-10"]
    bed = write(
        tmp_path,
        "b.bed",
        "#chrom\tstart\tend\tname\tscore\tstrand\tlabel\tsplit\n"
        "chr1\t8\t12\tr1\t0\t-\tup\ttest\n"
        "# a comment\n"
        "chr1\t0\t2\tr2\t0\t+\tdown\t\n",
    )
    data = read_labelled(str(bed), genome=genome)
    # chr1[8:12] = ACGG; the minus strand reads CCGT
    assert [s.tolist() for s in data.sequences] == [ids("CCGT"), ids("AC")]
    assert data.ids == ["r1", "r2"] and data.splits == ["test", None] and data.labels == ["up", "down"]


def test_fasta_classes(tmp_path):
    pos = write(tmp_path, "pos.fa", ">p1\nACGT\n>p2\nGG\n")
    neg = write(tmp_path, "neg.fa", ">n1\nTTTT\n")
    data = read_labelled([f"promoter={pos}", f"background={neg}"])
    assert data.ids == ["p1", "p2", "n1"] and data.labels == ["promoter", "promoter", "background"]
    assert data.sources[1] == f"{pos}: record 'p2' (line 3)"
    assert infer_task(data) == TaskSpec("binary", ("background", "promoter"))


def _read_as_n_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "read as N" in r.getMessage()]


def test_ambiguity_codes_are_read_as_n_with_one_warning_per_file(tmp_path, caplog):
    """No input format turns IUPAC codes into N silently: each file says how many of its
    sequences had them and which codes; a file without any says nothing."""
    table = write(tmp_path, "t.csv", "sequence,label\nACRT,a\nACGT,b\nYYGT,a\n")
    assert [s.tolist() for s in read_labelled(str(table)).sequences][0] == ids("ACNT")
    genome = write(tmp_path, "g.fa", ">chr1\nACGTKACGTA\n")
    bed = write(tmp_path, "t.bed", "chr1\t0\t5\tup\nchr1\t5\t9\tdown\n")
    read_labelled(str(bed), genome=genome)
    classes = write(tmp_path, "c.fa", ">x\nACGM\n>y\nACGT\n")
    plain = write(tmp_path, "p.fa", ">z\nACGT\n")
    read_labelled([f"pos={classes}", f"neg={plain}"])
    assert _read_as_n_warnings(caplog) == [
        f"{table}: IUPAC codes (R=1,Y=2) read as N in 2 of 3 sequences",
        f"{bed} (sequences from {genome}): IUPAC codes (K=1) read as N in 1 of 2 intervals",
        f"{classes}: IUPAC codes (M=1) read as N in 1 of 2 records",
    ]


def test_lenient_replacements_are_counted_too(tmp_path, caplog):
    table = write(tmp_path, "t.tsv", "sequence\tlabel\nAC-T\ta\n")
    read_labelled(str(table), lenient=True)
    message = f"{table}: 1 invalid character(s) (--lenient) read as N in 1 of 1 sequences"
    assert _read_as_n_warnings(caplog) == [message]


def test_parse_input_and_format(tmp_path):
    odd = write(tmp_path, "a=b.csv", "sequence,label\nA,x\n")
    assert parse_input(str(odd)) == (None, str(odd))  # an existing path with '=' is a path
    assert parse_input("tf=x.fa") == ("tf", "x.fa")
    assert [input_format(n) for n in ("a.CSV", "b.tsv.gz", "c.bed.bgz", "d.txt")] == [
        "csv",
        "tsv",
        "bed",
        "tsv",
    ]
    assert [input_format(n) for n in ("e.parquet", "f.PQ")] == ["parquet", "parquet"]
    with pytest.raises(InputDataError, match=r"cannot tell the format .* \.csv, \.tsv, \.parquet or \.bed"):
        input_format("data.xlsx")
    with pytest.raises(ValueError, match="needs --genome"):
        read_labelled(str(write(tmp_path, "x.bed", "chr1\t0\t2\ta\n")))


BAD_TABLES = [
    ("empty.csv", "", "empty.csv: empty file"),
    ("blank.csv", "\n\n", "blank.csv: empty file"),
    ("header.csv", "sequence,label\n", "header.csv: no data rows after the header (line 1)"),
    ("nolabel.csv", "sequence,lab\nACGT,a\n", "nolabel.csv: line 1: missing column(s) 'label'"),
    ("tabs.tsv", "sequence,label\nACGT,a\n", "tabs.tsv: line 1: missing column(s) 'sequence', 'label'"),
    (
        "base.csv",
        "sequence,label\nACGT,a\nACXT,b\n",
        "base.csv: line 3, column 'sequence', position 3: invalid character 'X'",
    ),
    ("space.csv", "sequence,label\nAC GT,a\n", "position 3: invalid character ' ' (whitespace"),
    ("emptyseq.csv", "sequence,label\n  ,a\n", "emptyseq.csv: line 2, column 'sequence': empty sequence"),
    (
        "fields.csv",
        "sequence,label\nACGT,a,extra\n",
        "fields.csv: line 2: 3 field(s), but the header (line 1) has 2",
    ),
    (
        "split.csv",
        "sequence,label,split\nACGT,a,dev\n",
        "split.csv: line 2, column 'split': split 'dev' is not one of",
    ),
    ("dup.csv", "sequence,label,Label\nACGT,a,b\n", "dup.csv: line 1: duplicate column(s) label"),
    (
        "utf.csv",
        "sequence,label\nACGT,a\nAC\u00e9T,b\n",
        "line 3, column 'sequence', position 3: invalid character 'é' (not ASCII)",
    ),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD_TABLES, ids=[b[0] for b in BAD_TABLES])
def test_bad_tables_name_file_and_line(tmp_path, name, text, message):
    path = write(tmp_path, name, text)
    with pytest.raises(InputDataError) as info:
        read_labelled(str(path))
    assert str(info.value).startswith(str(tmp_path)), info.value
    assert message in str(info.value)


BAD_BEDS = [
    ("chr1\t8\t21\tup\n", "line 1: interval chr1:8-21 runs past the end of 'chr1' (length 20)"),
    ("chr1\t0\t4\tup\nchr9\t0\t4\tup\n", "line 2: chromosome 'chr9' is not in the genome"),
    ("chr1\t5\t5\tup\n", "line 1: need 0 <= start < end, got start 5, end 5"),
    ("chr1\t0\tx\tup\n", "must be integers"),
    ("chr1\t0\t4\tup\t0\n", "line 1: 5 columns without a header line"),
    ("#chrom\tstart\tend\tname\nchr1\t0\t4\tx\n", "line 1: missing column(s) 'label'"),
    ("", "empty file: no BED intervals"),
    ("chrom\tstart\tend\tlabel\n", "no intervals after the header"),
    ("chrom\tstart\tend\tlabel\tstrand\nchr1\t0\t4\tup\t*\n", "line 2: strand must be +, - or ."),
]


@pytest.mark.parametrize(("text", "message"), BAD_BEDS)
def test_bad_beds_name_file_and_line(tmp_path, genome, text, message):
    path = write(tmp_path, "x.bed", text)
    with pytest.raises(InputDataError) as info:
        read_labelled(str(path), genome=genome)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value), info.value


def test_bed_interval_with_a_bad_base_in_the_genome(tmp_path):
    genome = write(tmp_path, "g.fa", ">c\nACGTXACGTA\n")
    bed = write(tmp_path, "x.bed", "c\t0\t3\tok\nc\t2\t8\tbad\n")
    with pytest.raises(InputDataError, match=r"x.bed: line 2: .*g.fa c:5: invalid character 'X'"):
        read_labelled(str(bed), genome=genome)
    assert len(read_labelled(str(bed), genome=genome, lenient=True)) == 2


def test_bad_fasta_class_names_record(tmp_path):
    bad = write(tmp_path, "bad.fa", ">a\nACGT\n>b\nAC*T\n")
    with pytest.raises(InputDataError, match=r"bad.fa: record 'b', line 4, column 3: invalid character '\*'"):
        read_labelled([f"x={bad}"])


def test_readers_do_not_import_torch():
    code = (
        "import sys, genomamba.io.labels, genomamba.tasks.targets, genomamba.tasks.coding; "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_bend_style_bed_with_chromosome_header_and_valid_split(tmp_path, genome):
    # BEND writes "chromosome" for the first column and "valid" for the validation split
    bed = write(
        tmp_path,
        "bend.bed",
        "chromosome\tstart\tend\tstrand\tsplit\tlabel\n"
        "chr1\t0\t4\t+\ttrain\tup\n"
        "chr1\t8\t12\t-\tvalid\tdown\n"
        "chr2\t5\t10\t+\ttest\tup\n",
    )
    data = read_labelled(str(bed), genome=genome)
    assert [s.tolist() for s in data.sequences] == [ids("ACGT"), ids("CCGT"), ids("AAAAA")]
    assert data.splits == ["train", "val", "test"] and data.labels == ["up", "down", "up"]


def _parquet(tmp_path, name: str, columns: dict):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / name
    pq.write_table(pa.table(columns), path)
    return path


def test_parquet_reads_like_the_same_csv(tmp_path):
    columns = {"ID": ["s1", "s2", None], "sequence": ["ACGT", "acgtRY", "NNAC"],
               "label": ["yes", "no", "yes"], "group": ["g1", "g1", None],
               "split": ["train", "validation", None], "note": [1, 2, 3]}
    data = read_labelled(str(_parquet(tmp_path, "a.parquet", columns)))
    csv = read_labelled(str(write(tmp_path, "a.csv", "id,sequence,label,group,split\n"
                                  "s1,ACGT,yes,g1,train\ns2,acgtRY,no,g1,validation\n,NNAC,yes,,\n")))
    assert [s.tolist() for s in data.sequences] == [s.tolist() for s in csv.sequences]
    assert (data.labels, data.groups[:2], data.splits) == (csv.labels, csv.groups[:2], csv.splits)
    assert data.ids == ["s1", "s2", "a.parquet:3"] and data.groups[2] == "a.parquet:3"
    assert data.sources == [f"{tmp_path / 'a.parquet'}: row {i}" for i in (1, 2, 3)]


def test_parquet_numeric_and_list_labels(tmp_path):
    regression = read_labelled(str(_parquet(tmp_path, "r.pq", {"sequence": ["AC", "GT"],
                                                               "label": [0.5, 2.0]})))
    assert regression.labels == ["0.5", "2.0"] and infer_task(regression).task == "regression"
    binary = read_labelled(str(_parquet(tmp_path, "b.pq", {"sequence": ["AC", "GT"], "label": [0, 1]})))
    assert infer_task(binary) == TaskSpec("binary", ("0", "1"))
    multi = read_labelled(str(_parquet(tmp_path, "m.pq", {"sequence": ["AC", "GT"],
                                                          "label": [["TF1", "TF2"], ["TF2"]]})))
    assert infer_task(multi) == TaskSpec("multilabel", ("TF1", "TF2"))


@pytest.mark.parametrize("columns, message", [
    ({"sequence": ["ACGT", "AXGT"], "label": ["a", "b"]},
     r"row 2, column 'sequence', position 2: invalid character 'X'"),
    ({"sequence": ["ACGT", None], "label": ["a", "b"]}, r"row 2, column 'sequence': empty sequence"),
    ({"seq": ["ACGT"], "label": ["a"]}, r"missing column\(s\) 'sequence' \(found: 'seq', 'label'\)"),
    ({"sequence": ["ACGT"], "label": ["a"], "Label": ["b"]}, r"duplicate column\(s\) label"),
    ({"sequence": ["ACGT", "CC"], "label": ["a", "b"], "split": ["train", "dev"]},
     r"row 2, column 'split': split 'dev' is not one of"),
])
def test_bad_parquet_names_file_and_row(tmp_path, columns, message):
    path = _parquet(tmp_path, "bad.parquet", columns)
    with pytest.raises(InputDataError, match=rf"^{path}: {message}"):
        read_labelled(str(path))


def test_parquet_missing_labels_and_broken_files(tmp_path):
    data = read_labelled(str(_parquet(tmp_path, "n.parquet", {"sequence": ["AC", "GT", "TT"],
                                                               "label": [1.0, float("nan"), None]})))
    with pytest.raises(InputDataError, match=r"n.parquet: row 2: label 'nan' reads as a missing"):
        infer_task(data)
    with pytest.raises(InputDataError, match=r"n.parquet: row 3: empty label"):
        infer_task(data.subset([0, 2]))
    broken = write(tmp_path, "broken.parquet", "sequence,label\nACGT,a\n")
    with pytest.raises(InputDataError, match="broken.parquet: not a readable Parquet file"):
        read_labelled(str(broken))
    packed = tmp_path / "p.parquet.gz"
    plain = _parquet(tmp_path, "p.parquet", {"sequence": ["A"], "label": ["a"]})
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    with pytest.raises(InputDataError, match="gzip-compressed; Parquet compresses its columns itself"):
        read_labelled(str(packed))
