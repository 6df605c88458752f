"""results.csv rows (append, replace, resume) and the summary table made from them."""

from __future__ import annotations

import pandas as pd
import pytest

from genomamba.suite.results import (
    COLUMNS,
    append_row,
    completed,
    markdown_table,
    read_results,
    row_of,
    summarise,
    write_report,
)


def _metrics(mcc: float) -> dict:
    return {"accuracy": 0.9, "mcc": mcc, "f1": 0.8, "auroc": 0.95, "loss": 0.3}


def test_rows_append_replace_and_are_found_again(tmp_path):
    assert read_results(tmp_path).columns.tolist() == list(COLUMNS)
    append_row(tmp_path, row_of("t1", "cnn", 1, _metrics(0.5), 100, 20, 1.234))
    append_row(tmp_path, row_of("t1", "cnn", 2, _metrics(0.7), 100, 20, 2.0))
    append_row(tmp_path, row_of("t1", "cnn", 1, _metrics(0.6), 100, 20, 1.0))  # a rerun replaces its row
    table = read_results(tmp_path)
    assert len(table) == 2 and table.columns.tolist() == list(COLUMNS)
    assert sorted(table["mcc"]) == [0.6, 0.7]
    assert completed(tmp_path) == {("t1", "cnn", 1), ("t1", "cnn", 2)}
    assert not list(tmp_path.glob(".results.csv.tmp*"))


def test_summary_has_mean_std_spread_over_seeds():
    table = pd.DataFrame(
        [row_of("t", "m", s, _metrics(v), 10, 5, 1.0) for s, v in ((1, 0.5), (2, 0.7), (3, 0.6))]
        + [row_of("t", "one", 1, _metrics(0.4), 10, 5, 3.0)]
    )
    summary = summarise(table).set_index("method")
    assert summary.at["m", "mean"] == pytest.approx(60.0)
    assert summary.at["m", "std"] == pytest.approx(10.0)
    assert summary.at["m", "spread"] == pytest.approx(20.0)
    assert summary.at["m", "n"] == 3
    assert summary.at["one", "std"] == 0.0


def test_markdown_marks_the_best_and_shows_the_published_number(tmp_path):
    for seed, (a, b) in enumerate(((0.5, 0.3), (0.7, 0.5)), 1):
        append_row(tmp_path, row_of("task1", "kmer-lr", seed, _metrics(a), 10, 5, 1.0))
        append_row(tmp_path, row_of("task1", "finetune:tiny", seed, _metrics(b), 10, 5, 1.0))
    published = {"task1": {"metric": "mcc", "value": 72.0, "source": "paper"}}
    summary = write_report(tmp_path, published)
    text = (tmp_path / "results.md").read_text()
    assert "| task | kmer-lr | finetune:tiny | published best (mcc x 100) |" in text
    assert "| task1 | **60.0 ± 14.1** | 40.0 ± 14.1 | 72.0 (paper) |" in text
    assert (tmp_path / "results.png").stat().st_size > 1000
    assert markdown_table(summary, {}, "mcc").count("\n| task1 |") == 1
