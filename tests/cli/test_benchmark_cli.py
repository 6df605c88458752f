"""`genomamba benchmark` end to end on a slice of the development suite, resuming, and its errors."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from click.testing import CliRunner

from genomamba.cli import main
from genomamba.suite.results import COLUMNS
from tests.suite.suite_cases import gue_slice, write_task

METHODS = ("kmer-lr", "onehot-lr", "cnn", "finetune:tiny,epochs=1,pooling=attention,strand_specific=true")


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_help_names_methods_outputs_and_exit_codes():
    result = _run("benchmark", "--help")
    assert result.exit_code == 0
    phrases = ("kmer-lr", "onehot-lr", "cnn", "finetune:PRESET", "probe", "results.csv", "published.yaml")
    for phrase in (*phrases, "65"):
        assert phrase in result.output, phrase


@pytest.mark.slow
def test_every_method_gives_a_number_on_every_task_and_a_rerun_resumes(tmp_path):
    suite, out = gue_slice(tmp_path / "suite"), tmp_path / "out"
    args = ["benchmark", suite, "--out", out, "--seeds", "1", "--device", "cpu"]
    for method in METHODS:
        args += ["--method", method]
    result = _run(*args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "results.csv")
    assert table.columns.tolist() == list(COLUMNS)
    assert len(table) == 2 * len(METHODS)
    for (task, method), rows in table.groupby(["task", "method"]):
        assert len(rows) == 1 and math.isfinite(rows["mcc"].iloc[0]), (task, method)
        assert 0.0 <= rows["accuracy"].iloc[0] <= 1.0
    assert set(table["n_train"]) == {160} and set(table["n_test"]) == {60}
    report = (out / "results.md").read_text()
    for method in METHODS:
        assert f"| {method} " in report
    assert (out / "results.png").is_file()

    again = _run(*args)
    assert again.exit_code == 0 and "0 run(s) to do" in again.output
    assert len(pd.read_csv(out / "results.csv")) == len(table)


def test_a_bad_suite_exits_65_naming_the_file(tmp_path):
    train = "sequence,label\nACGTAC,a\nGGCCTA,b\n"
    task = write_task(tmp_path / "suite" / "t", train, "sequence,label\nACGTAA,c\n")
    result = _run("benchmark", tmp_path / "suite", "--out", tmp_path / "out", "--method", "kmer-lr")
    assert result.exit_code == 65
    assert str(task / "test.csv") in result.output and "line 2" in result.output
    assert not (tmp_path / "out" / "results.csv").exists()


def test_usage_errors_exit_2(tmp_path):
    write_task(tmp_path / "suite" / "t", "sequence,label\nACGT,a\nACGA,b\n", "sequence,label\nACGT,a\n")
    unknown = _run("benchmark", tmp_path / "suite", "--out", tmp_path / "o", "--method", "svm")
    assert unknown.exit_code == 2 and "unknown method 'svm'" in unknown.output
    probe = _run("benchmark", tmp_path / "suite", "--out", tmp_path / "o", "--method", "probe")
    assert probe.exit_code == 2 and "--model" in probe.output
