"""genomamba embed / predict from the command line: outputs, exit codes, nothing partial left behind."""

from __future__ import annotations

import pandas as pd
from click.testing import CliRunner

from genomamba.cli import main
from genomamba.errors import EXIT_DATA
from tests.infer.infer_cases import BINARY_HEAD, save_model


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_embed_and_predict_write_their_tables(tmp_path, demo_data):
    model = save_model(tmp_path / "model", rc_strategy="ph", head=BINARY_HEAD)
    fasta = demo_data / "lambda_virus.fa"
    result = _run("embed", model, fasta, "-o", tmp_path / "emb.parquet", "--window", 4096, "--stride", 4096,
                  "--device", "cpu")
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(tmp_path / "emb.parquet")
    assert len(table) == 12 and table["end"].max() == 48502  # phage lambda: 48,502 bp
    assert table.filter(regex="^emb_").shape == (12, 16)
    result = _run("predict", model, fasta, "-o", tmp_path / "pred.csv", "--window", 4096, "--last", "drop",
                  "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(tmp_path / "pred.csv").columns[-2:]) == ["p_coding", "predicted"]
    assert "11 binary predictions written" in result.output


def test_invalid_fasta_exits_65_naming_file_and_line_and_writes_nothing(tmp_path):
    model = save_model(tmp_path / "model", rc_strategy="ph")
    bad = tmp_path / "bad.fa"
    bad.write_text(">r1\nACGTNNacgt\n>r2\nACGU\n")
    out = tmp_path / "emb.tsv"
    result = _run("embed", model, bad, "-o", out, "--device", "cpu")
    assert result.exit_code == EXIT_DATA
    assert "bad.fa" in result.output and "line 4" in result.output
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_predict_with_an_mlm_model_exits_65(tmp_path, demo_data):
    model = save_model(tmp_path / "model", rc_strategy="ps")
    fasta = demo_data / "lambda_virus.fa"
    result = _run("predict", model, fasta, "-o", tmp_path / "p.tsv", "--device", "cpu")
    assert result.exit_code == EXIT_DATA and "not a sequence classifier" in result.output


def test_bad_output_suffix_is_a_usage_error(tmp_path, demo_data):
    model = save_model(tmp_path / "model", rc_strategy="ph")
    result = _run("embed", model, demo_data / "lambda_virus.fa", "-o", tmp_path / "emb.xlsx")
    assert result.exit_code == 2 and ".parquet" in result.output


def test_no_sequence_at_all_exits_65_and_writes_nothing(tmp_path):
    """Every record shorter than --window with --last drop: nothing to embed, said so plainly."""
    model = save_model(tmp_path / "model", rc_strategy="ph")
    short = tmp_path / "short.fa"
    short.write_text(">a\nACGT\n>b\nACGTACGT\n")
    out = tmp_path / "emb.parquet"
    result = _run("embed", model, short, "-o", out, "--window", 100, "--last", "drop", "--device", "cpu")
    assert result.exit_code == EXIT_DATA
    assert "short.fa: no sequence to read" in result.output and not out.exists()


def test_overlapping_windows_for_a_bedgraph_track_are_a_usage_error(tmp_path, demo_data):
    from tests.infer.infer_cases import BINARY_HEAD

    model = save_model(tmp_path / "model", rc_strategy="ph", head=BINARY_HEAD)
    out = tmp_path / "track.bedgraph"
    result = _run("predict", model, demo_data / "lambda_virus.fa", "-o", out, "--window", 1000,
                  "--stride", 500, "--device", "cpu")
    assert result.exit_code == 2 and "overlapping windows" in result.output and not out.exists()
    result = _run("predict", model, demo_data / "lambda_virus.fa", "-o", out, "--window", 1000,
                  "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 1 + -(-48502 // 1000)  # the track line, 49 windows


def test_predict_over_bed_intervals_of_a_genome(tmp_path, demo_data):
    import shutil

    from tests.infer.infer_cases import BINARY_HEAD

    model = save_model(tmp_path / "model", rc_strategy="ph", head=BINARY_HEAD)
    genome = shutil.copy(demo_data / "lambda_virus.fa", tmp_path)  # its index is written beside it
    bed = tmp_path / "regions.bed"
    bed.write_text("#chrom\tstart\tend\tname\tscore\tstrand\n"
                   "gi|9626243|ref|NC_001416.1|\t100\t400\tr1\t0\t+\n"
                   "gi|9626243|ref|NC_001416.1|\t1000\t1300\tr2\t0\t-\n")
    out = tmp_path / "regions.tsv"
    result = _run("predict", model, "--bed", bed, "--genome", genome, "-o", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, sep="\t")
    assert list(table.columns[:7]) == ["file", "record", "start", "end", "n_bases", "name", "strand"]
    assert list(table["name"]) == ["r1", "r2"] and list(table["start"]) == [100, 1000]
    neither = _run("predict", model, "-o", out, "--device", "cpu")
    assert neither.exit_code == 2 and "--bed with --genome" in neither.output
    bad = tmp_path / "bad.bed"
    bad.write_text("chrZ\t0\t10\n")
    result = _run("predict", model, "--bed", bad, "--genome", genome, "-o", out, "--device", "cpu")
    assert result.exit_code == EXIT_DATA and "bad.bed: line 1: chromosome 'chrZ'" in result.output


def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path):
    model = save_model(tmp_path / "model", rc_strategy="ph")
    seqs = tmp_path / "seqs.tsv"  # a FASTA file whatever its name: the table would replace it
    seqs.write_text(">r1\nACGTACGTAA\n")
    (tmp_path / "sub").mkdir()
    for out in (seqs, tmp_path / "sub" / ".." / "seqs.tsv"):  # also through another spelling
        result = _run("embed", model, seqs, "-o", out, "--device", "cpu")
        assert result.exit_code == 2 and "would overwrite the input" in result.output
        assert seqs.read_text() == ">r1\nACGTACGTAA\n"


def test_context_record_runs_each_record_once_for_embed_and_predict(tmp_path, demo_data):
    """--context record end to end: the plan on stderr, the windowed table's rows, values that differ
    from window context (the windows see their record)."""
    model = save_model(tmp_path / "model", rc_strategy="ph", head=BINARY_HEAD)
    fasta = tmp_path / "lambda_start.fa"
    fasta.write_text("".join((demo_data / "lambda_virus.fa").read_text().splitlines(keepends=True)[:51]))
    cut = ["--window", 1000, "--device", "cpu"]
    for command, out in (("embed", tmp_path / "emb.tsv"), ("predict", tmp_path / "pred.tsv")):
        result = _run(command, model, fasta, "-o", out, *cut, "--context", "record", "--chunk-size", 1024)
        assert result.exit_code == 0, result.output
        assert "memory plan: chunks of 1,024 bases" in result.output
        assert "3,500 bases in 4 chunks of 1,024" in result.output
        table = pd.read_csv(out, sep="\t")
        assert len(table) == 4 and table["end"].max() == 3500
        assert _run(command, model, fasta, "-o", tmp_path / "alone.tsv", *cut).exit_code == 0
        alone = pd.read_csv(tmp_path / "alone.tsv", sep="\t")
        assert list(alone.columns) == list(table.columns)
        assert table[["start", "end"]].equals(alone[["start", "end"]])
        values = table.columns[5] if command == "embed" else "p_coding"
        assert not table[values].equals(alone[values])


def test_context_option_is_in_help_and_its_misuse_is_a_usage_error(tmp_path, demo_data):
    model = save_model(tmp_path / "model", rc_strategy="ph")
    fasta = demo_data / "lambda_virus.fa"
    for command in ("embed", "predict"):
        shown = _run(command, "--help").output
        assert "--context [window|record]" in shown and "--context record" in shown
    bed = tmp_path / "r.bed"
    bed.write_text("gi|9626243|ref|NC_001416.1|\t0\t100\n")
    for args, message in (
        (["--bed", bed, "--genome", fasta, "--context", "record"], "not --bed intervals"),
        ([fasta, "--chunk-size", 100], "--chunk-size go with --per-base or --context record"),
        ([fasta, "--context", "record", "--batch-size", 4], "--batch-size does not apply with --context"),
        ([fasta, "--context", "record", "--per-base"], "--context do not apply"),
    ):
        out = tmp_path / "out.tsv"
        result = _run("embed", model, *args, "-o", out, "--device", "cpu")
        assert result.exit_code == 2 and message in result.output, result.output
        assert not out.exists()
    result = _run("predict", model, fasta, "-o", tmp_path / "p.tsv", "--residual-store", "disk")
    assert result.exit_code == 2 and "--residual-store go with --context record" in result.output
