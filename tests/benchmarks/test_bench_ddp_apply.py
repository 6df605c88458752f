"""benchmarks/bench_ddp_apply.py: its CPU smoke mode runs finetune, embed and predict under the real
torchrun (1 process, then 2 gloo processes), reports their rates and finds the 2-process outputs
equal to the 1-process ones; its table comparison notices a changed order or value.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_ddp_apply  # noqa: E402


@pytest.mark.slow  # six torchrun launches, about 40 s on 2 shared cores
@pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)
def test_smoke_scales_and_finds_the_outputs_equal(monkeypatch, tmp_path, capsys):
    out = tmp_path / "report.json"
    argv = ["bench_ddp_apply", "--smoke", "--work", str(tmp_path / "work"), "--json", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    bench_ddp_apply.main()
    report = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == report  # the same JSON on stdout
    assert report["device_type"] == "cpu" and report["devices"] and report["torch"]
    assert report["settings"]["gpus"] == [1, 2] and report["settings"]["preset"] == "tiny"
    assert report["inputs"]["task"]["rows_per_split"] == {"train": 24, "val": 3, "test": 3}
    assert report["inputs"]["genome"] == {"path": str(tmp_path / "work" / "genome.fa"), "records": 2,
                                          "bases": 2048}
    for name in ("finetune", "embed", "predict"):
        one, two = report["runs"][name]
        assert (one["gpus"], two["gpus"]) == (1, 2)
        for row in (one, two):
            assert row["status"] == "ok" and row["exit_code"] == 0, row
            assert f"--nproc-per-node {row['gpus']}" in row["command"] and f" {name} " in row["command"]
            assert row["rate"] > 0 and row["wall_s"] > 0
        assert one["scaling_efficiency"] == 1.0
        assert two["scaling_efficiency"] == pytest.approx(two["rate"] / (2 * one["rate"]), abs=1e-4)
        assert two["compare"]["equal"] is True, two["compare"]
        assert report["summary"][name] == {
            "scaling_efficiency": {"2": two["scaling_efficiency"]},
            "outputs_equal": True,
            "all_ran": True,
        }
    finetune = report["runs"]["finetune"][1]
    assert finetune["train_rows"] == 24 and len(finetune["epoch_s"]) == 3
    assert "--dropout 0" in finetune["command"] and "--patience 0" in finetune["command"]
    # 2 processes against 1 on the CPU: the tolerances of tests/train/test_finetune_distributed.py
    assert finetune["compare"]["test_counts_equal"] is True
    assert finetune["compare"]["weights_max_abs_diff"] <= 1e-5
    assert finetune["compare"]["train_loss_max_abs_diff"] <= 1e-5
    for name in ("embed", "predict"):  # same batches, so the same values bit for bit on the CPU
        row = report["runs"][name][1]
        assert (row["windows"], row["bases"]) == (16, 2048)  # 2 records of 1,024 bases in 128-base windows
        assert row["compare"]["same_order"] is True and row["compare"]["max_abs_diff"] == 0.0
    assert report["runs"]["predict"][1]["compare"]["mismatched"] == {"predicted": 0}


def test_table_comparison_notices_order_and_values(tmp_path):
    table = pd.DataFrame({"file": ["g.fa"] * 3, "record": ["a", "a", "b"], "start": [0, 8, 0],
                          "end": [8, 16, 8], "n_bases": [0, 0, 1], "p_x": np.float32([0.1, 0.5, 0.9]),
                          "predicted": ["y", "x", "x"]})
    ref = tmp_path / "ref.parquet"
    table.to_parquet(ref)

    def compare(changed: pd.DataFrame) -> dict:
        changed.to_parquet(tmp_path / "out.parquet")
        return bench_ddp_apply.compare_tables(ref, tmp_path / "out.parquet", atol=1e-6)

    same = compare(table)
    assert same["equal"] and same["max_abs_diff"] == 0.0 and same["mismatched"] == {"predicted": 0}
    shuffled = compare(table.iloc[[1, 0, 2]])
    assert shuffled["same_order"] is False and not shuffled["equal"]
    moved = compare(table.assign(p_x=np.float32([0.1, 0.5, 0.8]), predicted=["y", "x", "y"]))
    assert moved["max_abs_diff"] == pytest.approx(0.1) and moved["mismatched"] == {"predicted": 1}
    assert not moved["equal"]
    assert not compare(table.iloc[:2])["same_rows"]
