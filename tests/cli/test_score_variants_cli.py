"""genomamba score-variants from the command line: the table, exit codes, nothing partial left behind."""

from __future__ import annotations

import shutil

import pandas as pd
from click.testing import CliRunner

from genomamba.cli import main
from genomamba.errors import EXIT_DATA
from tests.infer.infer_cases import save_model

LAMBDA = "gi|9626243|ref|NC_001416.1|"


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _inputs(tmp_path, demo_data, rows):
    genome = tmp_path / "lambda.fa"
    shutil.copy(demo_data / "lambda_virus.fa", genome)  # its index is written beside it
    vcf = tmp_path / "v.vcf"
    vcf.write_text("#CHROM\tPOS\tID\tREF\tALT\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    return genome, vcf


def test_scores_every_snv_and_counts_what_it_left_out(tmp_path, demo_data):
    model = save_model(tmp_path / "model", rc_strategy="ph")
    # lambda starts GGGCGGCGAC
    genome, vcf = _inputs(tmp_path, demo_data, [(LAMBDA, 1, "a", "G", "A,T"), (LAMBDA, 4, "b", "C", "CA"),
                                                (LAMBDA, 48502, "c", "G", "A")])
    out = tmp_path / "scores.csv.gz"
    result = _run("score-variants", model, vcf, "--genome", genome, "-o", out, "--window", 256,
                  "--device", "cpu")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert list(table["id"]) == ["a", "a", "c"] and list(table["pos"]) == [1, 1, 48502]
    assert list(table["window_end"] - table["window_start"]) == [256] * 3
    assert table["window_end"].max() == 48502  # the last window ends at lambda's last base
    assert "3 SNV scores written" in result.output


def test_a_ref_that_disagrees_exits_65_naming_the_line_and_writes_nothing(tmp_path, demo_data):
    model = save_model(tmp_path / "model", rc_strategy="ph")
    genome, vcf = _inputs(tmp_path, demo_data, [(LAMBDA, 1, ".", "G", "A"), (LAMBDA, 2, ".", "T", "A")])
    out = tmp_path / "scores.parquet"
    result = _run("score-variants", model, vcf, "--genome", genome, "-o", out, "--device", "cpu")
    assert result.exit_code == EXIT_DATA
    assert "v.vcf: line 3: REF T" in result.output and "which has G there" in result.output
    assert not out.exists()


def test_a_track_output_is_a_usage_error(tmp_path, demo_data):
    model = save_model(tmp_path / "model", rc_strategy="ph")
    genome, vcf = _inputs(tmp_path, demo_data, [(LAMBDA, 1, ".", "G", "A")])
    result = _run("score-variants", model, vcf, "--genome", genome, "-o", tmp_path / "x.bedgraph")
    assert result.exit_code == 2 and "variant scores are a table" in result.output
