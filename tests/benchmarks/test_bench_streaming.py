"""benchmarks/bench_streaming.py runs end to end on CPU (tiny preset, a few kilobases) and reports
the streamed pass, the windowed pass and equality with one pass."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_streaming  # noqa: E402


def test_cpu_smoke_reports_speed_memory_and_equality(tmp_path, capsys):
    out = tmp_path / "streaming.json"
    payload = bench_streaming.main(["--device", "cpu", "--presets", "tiny", "--length", "3000",
                                    "--chunk-size", "512", "--equality-lengths", "2000", "9000",
                                    "--batch-size", "4", "--work-dir", str(tmp_path), "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(capsys.readouterr().out) == json.loads(
        json.dumps(payload, default=str))
    (result,) = payload["results"]
    stream, windowed = result["stream"], result["windowed"]
    assert stream["status"] == "ok" and stream["finite"] and stream["chunk"] == 512
    assert stream["residual_store"] == "memory" and stream["peak_gpu_gib"] is None
    assert stream["bases_per_s"] > 0 and windowed["bases_per_s"] > 0 and windowed["window"] == 1024
    assert result["stream_vs_windowed"] == stream["bases_per_s"] / windowed["bases_per_s"]
    assert [e["length"] for e in result["equality"]] == [2000, 3000]  # 9000 capped at the record
    for e in result["equality"]:
        assert e["status"] == "ok"
        for key in ("per_base_embedding", "mean_embedding", "logits"):
            assert e[key]["max_abs"] < 1e-4 and e[key]["rel"] < 1e-5, (key, e[key])
