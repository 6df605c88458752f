"""``genomamba embed --per-base`` and ``genomamba track`` from the command line: outputs, the memory
plan on stderr, usage errors, and an out-of-memory mid-run (simulated): exit 69, one line, nothing left."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from genomamba.cli import main
from genomamba.errors import EXIT_UNAVAILABLE
from tests.infer.infer_cases import save_model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("models") / "mlm", rc_strategy="ps")


@pytest.fixture
def fasta(tmp_path):
    path = tmp_path / "two.fa"
    rng = np.random.default_rng(0)
    path.write_text("".join(f">{name}\n{''.join(rng.choice(list('ACGT'), n))}\n" for name, n in (("r1", 700),
                                                                                               ("r2", 333))))
    return path


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _left(tmp_path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir())


def test_embed_per_base_writes_a_directory_and_prints_the_plan(model, fasta, tmp_path):
    out = tmp_path / "emb"
    result = _run("embed", model, fasta, "--per-base", "--layer", 1, "--dtype", "float16", "-o", out,
                  "--device", "cpu", "--chunk-size", 128)
    assert result.exit_code == 0, result.output
    assert "memory plan: chunks of 128 bases" in result.output
    assert "r1: 700 bases in 6 chunks of 128, residual stream of 87.5 KiB in host memory" in result.output
    index = pd.read_csv(out / "index.tsv", sep="\t")
    assert index["record"].tolist() == ["r1", "r2"] and index["end"].tolist() == [700, 333]
    array = np.load(out / index["npy"][0], mmap_mode="r")
    assert array.shape == (700, 16) and array.dtype == np.float16


def test_track_writes_a_bigwig(model, fasta, tmp_path):
    pyBigWig = pytest.importorskip("pyBigWig")
    result = _run("track", model, fasta, "-o", tmp_path / "ll.bw", "--device", "cpu",
                  "--max-gpu-memory", "64M")
    assert result.exit_code == 0, result.output
    assert "memory plan: chunks of" in result.output and "(--max-gpu-memory)" in result.output
    with pyBigWig.open(str(tmp_path / "ll.bw")) as bw:
        assert bw.chroms() == {"r1": 700, "r2": 333}
        assert all(v <= 0 for v in bw.values("r2", 0, 333))


@pytest.mark.parametrize("args, message", [
    (["embed", "--per-base", "--window", "100"], "--window do not apply"),
    (["embed", "--chunk-size", "100"], "--chunk-size go with --per-base"),
    (["embed", "--dtype", "float16"], "--dtype goes with --per-base"),
    (["track", "--max-gpu-memory", "lots"], "not a memory size"),
])
def test_usage_errors_exit_2(model, fasta, tmp_path, args, message):
    result = _run(args[0], model, fasta, "-o", tmp_path / "out.tsv", *args[1:])
    assert result.exit_code == 2 and message in result.output
    assert _left(tmp_path) == ["two.fa"]


def test_a_budget_below_the_weights_exits_69_before_any_work(model, fasta, tmp_path):
    result = _run("track", model, fasta, "-o", tmp_path / "ll.tsv", "--device", "cpu",
                  "--max-gpu-memory", "100K")
    assert result.exit_code == EXIT_UNAVAILABLE
    assert "out of GPU memory before starting" in result.output and "raise --max-gpu-memory" in result.output
    assert _left(tmp_path) == ["two.fa"]


def _out_of_memory_in_second_record(monkeypatch, error):
    """The streaming pass fails inside a layer of the second record (the first is written by then)."""
    import genomamba.model.streaming as streaming

    real, calls = streaming._stream_layer, []

    def layer(layer, store, *args):
        calls.append(store.shape[1])
        if store.shape[1] == 333:
            raise error
        return real(layer, store, *args)

    monkeypatch.setattr(streaming, "_stream_layer", layer)


@pytest.mark.parametrize("command", ["embed", "track"])
def test_out_of_gpu_memory_mid_run_exits_69_and_leaves_nothing(model, fasta, tmp_path, monkeypatch, command):
    import torch

    _out_of_memory_in_second_record(monkeypatch, torch.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.10 GiB of which "
        "1.20 GiB is free. Including non-PyTorch memory, this process has 77.80 GiB memory in use."))
    out = tmp_path / ("emb" if command == "embed" else "ll.bw")
    extra = ["--per-base"] if command == "embed" else ["--track-out", tmp_path / "ll.bedgraph"]
    result = _run(command, model, fasta, "-o", out, "--device", "cpu", "--chunk-size", 100, *extra)
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert errors[0].startswith("error: r2: out of GPU memory streaming 333 bases in chunks of 100: CUDA out "
                                "of memory. Tried to allocate 2.00 GiB.")
    assert "lower --max-gpu-memory or --chunk-size" in errors[0]
    assert _left(tmp_path) == ["two.fa"]


def test_out_of_host_memory_mid_run_exits_69(model, fasta, tmp_path, monkeypatch):
    _out_of_memory_in_second_record(monkeypatch, MemoryError())
    result = _run("embed", model, fasta, "--per-base", "-o", tmp_path / "emb", "--device", "cpu")
    assert result.exit_code == EXIT_UNAVAILABLE
    assert "error: r2: out of memory streaming 333 bases" in result.output
    assert "--residual-store disk" in result.output
    assert _left(tmp_path) == ["two.fa"]
