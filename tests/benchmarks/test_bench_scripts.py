"""benchmarks/bench_model.py, bench_train.py and bench_variants.py run end to end on CPU and report
what they measured.

Tiny preset, tiny lengths, our model only (the peer has its own tests); the out-of-memory
fallback is driven by a stand-in timer, since a CPU never runs out of GPU memory.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_model  # noqa: E402
import bench_train  # noqa: E402
import bench_variants  # noqa: E402


def _run(module, monkeypatch, tmp_path, *argv) -> dict:
    out = tmp_path / "out.json"
    argv = [module.__name__, "--device", "cpu", "--smoke", "--json", str(out), *argv]
    monkeypatch.setattr(sys, "argv", argv)
    module.main()
    return json.loads(out.read_text())


def test_bench_train_smoke_reports_tokens_per_second(monkeypatch, tmp_path, capsys):
    data = _run(bench_train, monkeypatch, tmp_path, "--rows", "32x2", "--variants", "ours", "peer",
                "--warmup", "0", "--steps", "2")
    assert data["info"]["device_type"] == "cpu" and data["info"]["torch"]
    assert data["info"]["peer"] is False  # no --peer-sdist: skipped, and said so
    ours, peer = data["results"]
    assert ours["status"] == "ok" and ours["parameters"] == 21_674
    assert len(ours["step_s"]) == 2
    assert ours["tokens_per_s"] == pytest.approx(2 * 32 * 2 / ours["total_s"])
    assert peer["status"] == "skipped" and "peer-sdist" in peer["error"]
    (row,) = data["summary"]
    assert (row["length"], row["batch"], row["ours_tokens_per_s"]) == (32, 2, ours["tokens_per_s"])
    assert row["peer_status"] == row["peer_ph_status"] == "n/a"
    assert "ratio_ours_vs_peer_ph" not in row and "ratio_ours_ps_vs_peer" not in row
    assert "| 32 x 2 | ours |" in capsys.readouterr().out


def test_bench_train_times_structured_decays_beside_the_full_one(monkeypatch, tmp_path):
    data = _run(bench_train, monkeypatch, tmp_path, "--rows", "32x2", "--variants", "ours", "ours-ladder",
                "ours-scalar", "--warmup", "0", "--steps", "1")
    full, ladder, scalar = data["results"]
    assert full["status"] == ladder["status"] == scalar["status"] == "ok"
    assert (full["decay"], ladder["decay"], scalar["decay"]) == ("full", "ladder", "scalar")
    # one A rate per channel instead of d_state (8) of them: 2 layers x 2 directions x 64 channels x 7
    fewer = 2 * 2 * 64 * 7
    assert full["parameters"] - ladder["parameters"] == full["parameters"] - scalar["parameters"] == fewer


def test_bench_train_rows_parse():
    assert bench_train.parse_row("131072x2") == (131072, 2)
    assert bench_train.parse_row("1_048_576X1") == (1048576, 1)
    with pytest.raises(Exception, match="LENGTHxBATCH"):
        bench_train.parse_row("131072")


def test_bench_model_falls_back_to_the_largest_length_that_fits(monkeypatch, tmp_path):
    real = bench_model.time_steps
    seen = []

    def oom_above_64(step, warmup, steps, device):
        length = bench_model_lengths.pop(0)
        seen.append(length)
        if length > 64:
            return {"status": "oom", "error": "OutOfMemoryError: stand-in"}
        return real(step, warmup, steps, device)

    bench_model_lengths = [256, 128, 64, 32]
    monkeypatch.setattr(bench_model, "time_steps", oom_above_64)
    data = _run(bench_model, monkeypatch, tmp_path, "--lengths", "256", "128", "64", "32",
                "--variants", "ours", "--warmup", "0", "--steps", "1")
    (rec,) = data["results"]
    assert seen == [256, 128, 64]  # stops at the first length that fits
    assert rec["status"] == "oom" and rec["largest_fitting_length"] == 64
    assert [a["status"] for a in rec["attempts"]] == ["oom", "oom", "ok"]


def test_bench_variants_reports_snvs_per_second(monkeypatch, tmp_path):
    out = tmp_path / "out.json"
    argv = ["bench_variants", "--device", "cpu", "--preset", "tiny", "--snvs", "12", "--warmup", "4",
            "--windows", "64", "--batch-sizes", "4", "--json", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    bench_variants.main()
    (row,) = json.loads(out.read_text())
    assert row["device"] == "cpu" and row["window"] == 64 and 0 < row["snvs"] <= 12
    assert row["snvs_per_s"] == pytest.approx(row["snvs"] / row["seconds"], rel=0.01)
