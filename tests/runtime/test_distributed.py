"""Data-parallel pretraining: 2 CPU processes (gloo, launched by the real torchrun) against 1 process.

Tolerance: in ``--deterministic`` mode the 2-process run sees exactly the crops and masks of the
1-process run (keyed micro-batch generators), so the only difference is the order in which the
gradients of the 4 micro-batches of a step are summed (two per rank, then the all-reduce). That
moves the last bits: measured on the development machine, step losses differ by 3e-8 relative,
gradient norms by up to 1.1e-7 relative and final weights (up to 6.9 in size) by 4.8e-7 absolute after
6 steps; the tests allow 1e-5 for each. A 2-process run interrupted and resumed with 2 processes
must equal the uninterrupted 2-process run bit for bit. Every run also validates (on the training
shards: what matters here is that the ranks share the validation crops and sum their totals).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from genomamba.cli import main
from genomamba.model.config import ConfigError
from genomamba.model_directory import from_pretrained
from genomamba.runtime.device import World
from genomamba.runtime.distributed import world_from_env
from genomamba.train.config import PretrainConfig
from genomamba.train.data import CropSampler, micro_batch_rng, open_shards, rank_micro_batches
from genomamba.train.metrics import read_metrics
from genomamba.train.pretrain import pretrain
from genomamba.train.state import list_checkpoints, load_state
from tests.torchrun_cases import genomamba_script, torchrun

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)

TIMING_KEYS = {"elapsed_s", "tokens_per_s"}
TOLERANCE = 1e-5
# 1,024 tokens per step in passes of 4 x 64 bases: 4 micro-batches, 2 per rank (accumulation
# under no_sync); the first 2 steps use 32-base crops (8 per pass), so the warm-up is covered too.
VALUES = dict(
    preset="tiny",
    seq_len=64,
    batch_size=4,
    tokens_per_step=1024,
    max_steps=6,
    lr=5e-3,
    warmup_steps=2,
    seed=1,
    deterministic=True,
    device="cpu",
    checkpoint_every=100,
    seq_len_start=32,
    seq_len_warmup_steps=2,
)
CLI_OPTIONS = (
    "seq_len",
    "batch_size",
    "tokens_per_step",
    "max_steps",
    "lr",
    "warmup_steps",
    "seed",
    "checkpoint_every",
)
# a worker that calls the library under torchrun and raises a real SIGTERM on one rank only
WORKER = """\
import json, os, signal, sys
from pathlib import Path
from genomamba.train.config import PretrainConfig
from genomamba.train.pretrain import pretrain

config = PretrainConfig(**json.loads(sys.argv[1]))
stop_rank, stop_step, reports = int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
rank = int(os.environ["RANK"])

def should_stop(step):
    if rank == stop_rank and step == stop_step:
        os.kill(os.getpid(), signal.SIGTERM)
    return False

result = pretrain(config, should_stop=should_stop, log=lambda message: None)
report = {"rank": rank, "status": result.status, "step": result.step, "signal": result.signal}
(reports / f"rank{rank}.json").write_text(json.dumps(report))
"""








# validation after steps 3 and 6: 4 crops of 64 (2 per rank), and the same bases as 8 pieces of 32
VALIDATION = dict(val_every=3, val_tokens=256, val_seq_lens=[32, 64])


def _config(shards: Path, out: Path, **changes) -> PretrainConfig:
    values = {**VALUES, **VALIDATION, "data": [str(shards)], "val_data": [str(shards)], "out": str(out)}
    return PretrainConfig(**{**values, **changes})


def _strip(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return from_pretrained(run / "model").state_dict()


def _assert_close_runs(a: Path, b: Path) -> None:
    ra, rb = _strip(read_metrics(a / "metrics.jsonl")), _strip(read_metrics(b / "metrics.jsonl"))
    assert [r["step"] for r in ra] == [r["step"] for r in rb] == list(range(1, VALUES["max_steps"] + 1))
    for x, y in zip(ra, rb, strict=True):
        assert x.keys() == y.keys()
        for key in ("step", "seq_len", "masked_tokens", "tokens", "lr"):
            assert x[key] == y[key], (key, x, y)
        for key in ("loss", "accuracy", "perplexity", "grad_norm"):
            assert y[key] == pytest.approx(x[key], rel=TOLERANCE), (key, x, y)
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wb[name], wa[name], rtol=0, atol=TOLERANCE, msg=name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, lambda_shards):
    """The same deterministic run with 1 process (in this process) and 2 (torchrun + the CLI)."""
    root = tmp_path_factory.mktemp("ddp")
    one = pretrain(_config(lambda_shards, root / "one"), log=lambda message: None)
    assert one.status == "finished"
    (root / "run.yaml").write_text("seq_len_start: 32\nseq_len_warmup_steps: 2\n")
    args = ["pretrain", "--data", str(lambda_shards), "--preset", "tiny", "--out", str(root / "two")]
    for key in CLI_OPTIONS:
        args += ["--" + key.replace("_", "-"), str(VALUES[key])]
    args += ["--config", str(root / "run.yaml"), "--deterministic", "--device", "cpu", "--val-data",
             str(lambda_shards), "--val-every", "3", "--val-tokens", "256", "--val-seq-len", "32",
             "--val-seq-len", "64"]
    two = torchrun(genomamba_script(root), *args)
    assert two.returncode == 0, two.stderr[-3000:]
    return root, two.stderr


@pytest.mark.slow  # two torchrun processes
def test_two_processes_train_like_one(runs):
    root, _ = runs
    assert json.loads((root / "two" / "run_config.json").read_text()) == json.loads(
        (root / "one" / "run_config.json").read_text()
    ) | {"out": str(root / "two")}
    assert [r["seq_len"] for r in read_metrics(root / "two" / "metrics.jsonl")] == [32, 32, 64, 64, 64, 64]
    _assert_close_runs(root / "one", root / "two")
    one, two = (read_metrics(root / run / "val_metrics.jsonl") for run in ("one", "two"))
    assert [(r["step"], r["seq_len"]) for r in two] == [(3, 32), (3, 64), (6, 32), (6, 64)]
    for x, y in zip(one, two, strict=True):
        for key in ("step", "set", "seq_len", "masked_tokens", "tokens", "crops", "tokens_seen"):
            assert x[key] == y[key], (key, x, y)
        for key in ("loss", "accuracy"):
            assert y[key] == pytest.approx(x[key], rel=TOLERANCE), (key, x, y)


@pytest.mark.slow  # two torchrun processes
def test_only_rank_zero_writes_and_logs(runs):
    root, stderr = runs

    def files(run: Path) -> set[str]:
        return {str(p.relative_to(run)) for p in run.rglob("*")}

    assert files(root / "two") == files(root / "one")  # nothing twice, no temporary leftovers
    assert len(read_metrics(root / "two" / "metrics.jsonl")) == VALUES["max_steps"]
    assert [step for step, _ in list_checkpoints(root / "two")] == [VALUES["max_steps"]]
    state = load_state(list_checkpoints(root / "two")[-1][1])
    assert state["world_size"] == 2 and state["sampler"] == {"micro_batches": 4 * VALUES["max_steps"]}
    assert stderr.count("pretrain: 21,674 parameters") == 1, stderr
    assert "x 2 processes (gloo)" in stderr
    assert stderr.count("finished 6 steps") == 1, stderr


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, lambda_shards):
    """A 2-process run whose rank 1 (only) receives SIGTERM after step 3."""
    root = tmp_path_factory.mktemp("ddp_sigterm")
    worker = root / "worker.py"
    worker.write_text(WORKER)
    run = root / "run"
    config = json.dumps(_config(lambda_shards, run).to_dict())
    reports = root / "reports"  # outside RUN_DIR: the worker's own output, one file per rank
    reports.mkdir()
    result = torchrun(worker, config, "1", "3", str(reports))
    assert result.returncode == 0, result.stderr[-3000:]
    return run, [json.loads((reports / f"rank{rank}.json").read_text()) for rank in (0, 1)]


@pytest.mark.slow  # two torchrun processes
def test_sigterm_on_one_rank_stops_every_rank_after_a_checkpoint(interrupted):
    run, reports = interrupted
    assert reports == [{"rank": rank, "status": "interrupted", "step": 3, "signal": 15} for rank in (0, 1)]
    assert [step for step, _ in list_checkpoints(run)] == [3]
    assert len(read_metrics(run / "metrics.jsonl")) == 3
    assert not (run / "model").exists()


@pytest.mark.slow  # two torchrun processes
def test_resume_with_two_processes_is_exact(runs, interrupted, lambda_shards, tmp_path):
    root, _ = runs
    run = tmp_path / "run"
    shutil.copytree(interrupted[0], run)
    args = ["pretrain", "--data", str(lambda_shards), "--out", str(run), "--resume"]
    resumed = torchrun(genomamba_script(tmp_path), *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stderr and resumed.stderr.count("resuming") == 1
    assert _strip(read_metrics(run / "metrics.jsonl")) == _strip(read_metrics(root / "two" / "metrics.jsonl"))
    assert read_metrics(run / "val_metrics.jsonl") == read_metrics(root / "two" / "val_metrics.jsonl")
    wa, wb = _weights(root / "two"), _weights(run)
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


@pytest.mark.slow  # two torchrun processes
def test_resume_with_another_world_size_continues_the_same_run(runs, interrupted, tmp_path):
    # the data position is global, so a 2-process checkpoint resumes in 1 process (close, not
    # bit-identical: the gradient sums of steps 1-3 were ordered as with 2 processes)
    root, _ = runs
    run = tmp_path / "run"
    shutil.copytree(interrupted[0], run)
    config = PretrainConfig(**{**json.loads((run / "run_config.json").read_text()), "out": str(run)})
    result = pretrain(config, resume=True, log=lambda message: None)
    assert (result.status, result.step) == ("finished", VALUES["max_steps"])
    _assert_close_runs(root / "one", run)


def test_world_size_must_divide_the_micro_batches(lambda_shards, tmp_path, monkeypatch):
    for key, value in dict(
        WORLD_SIZE="3", RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="1"
    ).items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "run"
    args = [
        "pretrain",
        "--data",
        str(lambda_shards),
        "--preset",
        "tiny",
        "--out",
        str(out),
        "--seq-len",
        "64",
        "--batch-size",
        "4",
        "--tokens-per-step",
        "1024",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "3 processes cannot share the 4 micro-batch(es)" in result.output
    assert "--tokens-per-step 1536" in result.output  # 2 micro-batches per process
    assert not out.exists()
    with pytest.raises(ConfigError, match="3 processes cannot share"):
        pretrain(_config(lambda_shards, out), log=lambda message: None)
    assert not out.exists()


def test_ranks_split_every_step_between_them(lambda_shards):
    config = _config(lambda_shards, "unused", seq_len_start=16, seq_len_warmup_steps=4)
    assert config.crop_lengths() == [16, 32, 64]
    for world_size in (1, 2, 4):
        config.check_world_size(world_size)
        first = 0
        for length in config.crop_lengths():
            sizes = config.micro_batch_sizes(length)
            assert sum(sizes) == 1024 // length
            taken = [mb for r in range(world_size) for mb in rank_micro_batches(first, sizes, r, world_size)]
            assert sorted(taken) == [(first + k, n) for k, n in enumerate(sizes)]
            first += len(sizes)
    # a micro-batch's crops depend on (seed, index) only, not on who draws them or what came before
    sampler = CropSampler(open_shards([lambda_shards]))
    a = sampler.sample(3, 64, micro_batch_rng(1, 7))
    sampler.sample(5, 64, micro_batch_rng(1, 2))
    assert (sampler.sample(3, 64, micro_batch_rng(1, 7)) == a).all()
    assert not (sampler.sample(3, 64, micro_batch_rng(1, 8)) == a).all()


def test_world_from_env():
    assert world_from_env({}) == World(0, 1, 0)
    env = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "1"}
    assert world_from_env(env) == World(1, 2, 1)
    assert not World(1, 2, 1).is_main
    with pytest.raises(ConfigError, match="MASTER_ADDR"):
        world_from_env({"WORLD_SIZE": "2", "RANK": "1"})
    with pytest.raises(ConfigError, match="not an integer"):
        world_from_env({**env, "RANK": "one"})
    with pytest.raises(ConfigError, match="inconsistent"):
        world_from_env({**env, "RANK": "2"})
