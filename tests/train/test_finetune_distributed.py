"""Data-parallel fine-tuning (genomamba.train.finetune under torchrun, genomamba.train.data_parallel):
2 CPU processes (gloo, launched by the real torchrun) against 1 process.

The data are 65 real 200-base windows of the demo yeast genome (coding vs intergenic): 33 training
rows, so the last batch of 8 has a single row and rank 1 trains on a stand-in row with weight 0;
15 validation and 17 test rows, so the ranks score shares of different sizes. Dropout is 0 (the
ranks' dropout masks could not match one process's), the run is 3 epochs of the tiny preset.

Tolerance: both runs draw the same batches and strands; what differs is that each rank sums the
gradient of its share of a batch and DDP averages the shares (instead of one sum over the batch),
and that the rows are scored in other batches. Measured on the development machine (torch 2.13,
1 thread per process): train losses, validation and test metrics differ by up to 3.1e-8 relative,
the exported weights (up to 6.9 in size) by up to 4.8e-7 absolute after 15 steps (4.5e-8 with
LoRA, 3.7e-9 with a frozen backbone after 10); the tests allow TOLERANCE = 1e-5, relative for the
metrics and absolute for the weights, as tests/runtime/test_distributed.py does for pretraining.

Also checked with 2 processes: a frozen backbone and LoRA (every rank returns the same report), a
non-empty OUT refused on every rank, and a rank that fails while rank 0 is outside any collective:
torchrun stops rank 0 with SIGTERM, and rank 0 still removes the OUT it had begun.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from finetune_cases import DEMO

from genomamba.cli import main
from genomamba.model import build_model
from genomamba.model_directory import from_pretrained, save_pretrained
from genomamba.tasks.coding import coding_task, write_task_csv
from genomamba.train.data_parallel import batch_share, raise_on_every_rank, rank_rows, sigterm_raises
from genomamba.train.finetune import OutputExistsError, finetune
from genomamba.train.finetune_data import FinetuneConfig
from tests.torchrun_cases import genomamba_script, torchrun

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)

TOLERANCE = 1e-5
VALUES = dict(preset="tiny", epochs=3, batch_size=8, lr=5e-3, dropout=0.0, patience=0, seed=1, device="cpu",
              strand_specific=False)
CLI_ARGS = ["--preset", "tiny", "--epochs", "3", "--batch-size", "8", "--lr", "5e-3", "--dropout", "0",
            "--patience", "0", "--seed", "1", "--device", "cpu", "--both-strands"]
# the worker of the runs from a pretrained model: one process group for several runs, each
# rank's reports (or the error it raised) into its own file
WORKER = """\
import json, os, sys
from pathlib import Path
import torch.distributed as dist
from genomamba.errors import GenomambaError
from genomamba.train.finetune import finetune
from genomamba.train.finetune_data import FinetuneConfig

dist.init_process_group("gloo")
rank, reports = int(os.environ["RANK"]), []
for values in json.loads(sys.argv[1]):
    try:
        reports.append(finetune(FinetuneConfig(**values), log=lambda message: None).report)
    except GenomambaError as exc:
        reports.append({"error": type(exc).__name__, "message": str(exc)})
Path(sys.argv[2], f"rank{rank}.json").write_text(json.dumps(reports))
dist.destroy_process_group()
"""
# a run whose rank 1 fails after its second backward pass, while rank 0 is busy outside any
# collective (so that it learns of the failure only from torchrun's SIGTERM)
FAILING_WORKER = """\
import json, os, sys, time
import genomamba.train.finetune as module
from genomamba.train.finetune_data import FinetuneConfig

rank, calls, clip_and_step = int(os.environ["RANK"]), [], module.clip_and_step

def failing(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        if rank == 1:
            raise RuntimeError("rank 1 fails at step 2 (test)")
        time.sleep(120)
    return clip_and_step(*args, **kwargs)

module.clip_and_step = failing
module.finetune(FinetuneConfig(**json.loads(sys.argv[1])), log=lambda message: None)
"""








def _task_csv(folder: Path) -> Path:
    """65 windows of the demo genome: 33 train and 15 val (chrII), 17 test (chrI), both classes."""
    rows = coding_task(DEMO / "yeast_chrI_chrII.fa", DEMO / "yeast_chrI_chrII.gff3", window=200,
                       per_class=24, test_chroms=("chrI",))
    rng = np.random.default_rng(0)
    chr2 = [rows[i] for i in rng.permutation([i for i, r in enumerate(rows) if r["split"] == "train"])]
    chr1 = [rows[i] for i in rng.permutation([i for i, r in enumerate(rows) if r["split"] == "test"])]
    for row in chr2[33:]:
        row["split"] = "val"
    return write_task_csv(chr2 + chr1[:17], folder / "coding.csv")


def _config(csv: Path, out: Path, **changes) -> FinetuneConfig:
    return FinetuneConfig(**{**VALUES, "train": [str(csv)], "out": str(out), **changes})


def _records(out: Path) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"} for line in lines]


def _assert_close(x, y, where: str) -> None:
    """Equal structure; numbers within TOLERANCE (relative), everything else equal."""
    if isinstance(x, dict):
        assert x.keys() == y.keys(), where
        for key in x:
            _assert_close(x[key], y[key], f"{where}.{key}")
    elif isinstance(x, list):
        assert len(x) == len(y), where
        for k, (a, b) in enumerate(zip(x, y, strict=True)):
            _assert_close(a, b, f"{where}[{k}]")
    elif isinstance(x, float) and not isinstance(y, bool):
        assert y == pytest.approx(x, rel=TOLERANCE, abs=TOLERANCE * 1e-3), where
    else:
        assert x == y, where


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = from_pretrained(a).state_dict(), from_pretrained(b).state_dict()
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wb[name], wa[name], rtol=0, atol=TOLERANCE, msg=name)


def _files(run: Path) -> set[str]:
    return {str(p.relative_to(run)) for p in run.rglob("*")}


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return _task_csv(tmp_path_factory.mktemp("ddp_task"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, task):
    """The same run with 1 process (in this process) and 2 (torchrun + the CLI)."""
    root = tmp_path_factory.mktemp("ddp_finetune")
    finetune(_config(task, root / "one"), log=lambda message: None)
    args = ["finetune", "--train", str(task), "--out", str(root / "two"), *CLI_ARGS]
    two = torchrun(genomamba_script(root), *args)
    assert two.returncode == 0, two.stderr[-3000:]
    return root, two.stderr


@pytest.mark.slow  # two torchrun processes
def test_two_processes_fine_tune_like_one(runs):
    root, _ = runs
    one, two = root / "one", root / "two"
    assert json.loads((two / "finetune_config.json").read_text()) == json.loads(
        (one / "finetune_config.json").read_text()
    ) | {"out": str(two)}
    records = _records(two)
    assert [r["step"] for r in records] == [5, 10, 15]  # 33 rows: 4 batches of 8 and one of 1
    _assert_close(_records(one), records, "metrics.jsonl")
    report_one, report_two = (json.loads((run / "metrics.json").read_text()) for run in (one, two))
    assert report_two["n"] == {"train": 33, "val": 15, "test": 17}
    _assert_close(report_one, report_two, "metrics.json")
    _assert_same_weights(one / "model", two / "model")


@pytest.mark.slow  # two torchrun processes
def test_only_rank_zero_writes_and_logs(runs):
    root, stderr = runs
    assert _files(root / "two") == _files(root / "one")  # nothing twice, no temporary left
    assert stderr.count("finetune: binary") == 1, stderr
    assert "x 2 processes (gloo)" in stderr
    assert stderr.count("epoch 3: train loss") == 1 and stderr.count("best epoch") == 1, stderr


@pytest.fixture(scope="module")
def pretrained_runs(tmp_path_factory, task):
    """Runs from a pretrained model, with a frozen backbone and with LoRA (when peft is there), in
    1 process and in 2 (one torchrun launch), and a run into a non-empty OUT in 2 processes."""
    import genomamba.model.lora as lora
    from genomamba.errors import UnavailableError

    root = tmp_path_factory.mktemp("ddp_pretrained")
    torch.manual_seed(0)
    base = save_pretrained(build_model("tiny", rc_strategy="ph"), root / "base")
    variants = {"frozen": dict(freeze_backbone=True)}
    try:
        lora.import_peft()
        variants["lora"] = dict(lora=4, lr=2e-2)
    except UnavailableError:
        pass
    busy = root / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("not ours\n")
    common = {**VALUES, "train": [str(task)], "model": str(base), "preset": None, "epochs": 2}
    values = [{**common, **v, "out": str(root / "two" / name)} for name, v in variants.items()]
    values.append({**common, "out": str(busy)})
    for name, changes in variants.items():
        finetune(FinetuneConfig(**{**common, **changes, "out": str(root / "one" / name)}), log=lambda m: None)
    (root / "worker.py").write_text(WORKER)
    (root / "reports").mkdir()
    result = torchrun(root / "worker.py", json.dumps(values), str(root / "reports"))
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [json.loads((root / "reports" / f"rank{r}.json").read_text()) for r in (0, 1)]
    return root, list(variants), reports


@pytest.mark.slow  # two torchrun processes
def test_frozen_backbone_and_lora_under_ddp(pretrained_runs):
    root, variants, (rank0, rank1) = pretrained_runs
    assert rank0 == rank1  # every rank took the same decisions and computed the same metrics
    for name, report in zip(variants, rank0, strict=False):
        one, two = root / "one" / name, root / "two" / name
        assert report == json.loads((two / "metrics.json").read_text())
        _assert_close(_records(one), _records(two), f"{name}: metrics.jsonl")
        _assert_close(json.loads((one / "metrics.json").read_text()), report, f"{name}: metrics.json")
        _assert_same_weights(one / "model", two / "model")
        assert _files(one) == _files(two)
    assert (root / "two" / "lora" / "adapter").is_dir() == ("lora" in variants)


@pytest.mark.slow  # two torchrun processes
def test_a_non_empty_out_is_refused_on_every_rank(pretrained_runs):
    root, variants, reports = pretrained_runs
    for rank in reports:  # both ranks raised rank 0's error; neither waited for the other
        assert rank[len(variants)]["error"] == "OutputExistsError"
        assert "is not empty" in rank[len(variants)]["message"]
    assert _files(root / "busy") == {"keep.txt"}


@pytest.mark.slow  # two torchrun processes
def test_a_rank_that_fails_stops_the_run_and_leaves_no_out(task, tmp_path):
    (tmp_path / "worker.py").write_text(FAILING_WORKER)
    out = tmp_path / "new" / "out"
    tic = time.perf_counter()
    result = torchrun(tmp_path / "worker.py", json.dumps({**VALUES, "train": [str(task)], "out": str(out)}))
    assert result.returncode != 0 and time.perf_counter() - tic < 100  # rank 0 was stopped, in its sleep
    assert "rank 1 fails at step 2 (test)" in result.stderr
    assert not (tmp_path / "new").exists(), _files(tmp_path / "new")  # rank 0 removed what it wrote


def test_seeds_are_refused_undertorchrun(task, tmp_path, monkeypatch):
    for key, value in dict(
        WORLD_SIZE="2", RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="1"
    ).items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["finetune", "--train", str(task), "--out", str(out), "--seeds", "1,2",
                                       *CLI_ARGS])
    assert result.exit_code == 2, result.output
    assert "one --seed and --out per launch" in result.output
    assert not out.exists()


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_batch_shares_give_the_gradient_of_the_batch_mean(world_size):
    for batch in range(1, 20):
        shares = [batch_share(batch, rank, world_size) for rank in range(world_size)]
        rows = [i for s in shares if s.count for i in range(batch)[s.rows]]
        assert rows == list(range(batch))  # contiguous shares, in rank order, every row once
        assert max(s.count for s in shares) - min(s.count for s in shares) <= 1
        # DDP averages the ranks' gradients: sum_r weight_r * mean_r / W must be the batch mean
        # for any per-row values, i.e. weight_r / W = count_r / batch for every rank
        values = np.random.default_rng(batch).normal(size=batch)
        mixed = sum(s.weight * values[s.rows].mean() for s in shares) / world_size
        assert mixed == pytest.approx(values.mean(), rel=1e-12)
        for s in shares:
            if s.count == 0:  # a last batch smaller than the world: a stand-in row, weight 0
                assert (s.rows, s.weight) == (slice(0, 1), 0.0) and batch < world_size
            else:
                assert s.weight == s.count * world_size / batch
    assert batch_share(7, 0, 1) == (slice(0, 7), 7, 1.0)  # one process: the batch as it is
    assert [rank_rows(10, r, 3) for r in range(3)] == [slice(0, 4), slice(4, 7), slice(7, 10)]
    assert [np.arange(10)[rank_rows(10, r, 3)].tolist() for r in range(3)] == [
        a.tolist() for a in np.array_split(np.arange(10), 3)
    ]


def test_one_process_raises_at_once_and_sigterm_raises(tmp_path):
    from genomamba.runtime.device import World
    from genomamba.runtime.distributed import Distributed

    world = Distributed(World(), torch.device("cpu"), None)

    def refuse():
        raise OutputExistsError("full")

    with pytest.raises(OutputExistsError, match="full"):
        raise_on_every_rank(world, refuse)
    raise_on_every_rank(world, lambda: None)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped, sigterm_raises(True):
        os.kill(os.getpid(), signal.SIGTERM)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before
    with sigterm_raises(False):
        assert signal.getsignal(signal.SIGTERM) is before
