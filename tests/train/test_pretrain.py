"""The pretraining loop on CPU with the tiny preset: learning, exact resume, all-N data, run outputs."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from genomamba.model_directory import from_pretrained
from genomamba.train.config import PretrainConfig
from genomamba.train.metrics import read_metrics
from genomamba.train.pretrain import RunExistsError, pretrain
from genomamba.train.state import checkpoint_dir, list_checkpoints
from genomamba.train.state_files import IncompleteStateError

TIMING_KEYS = {"elapsed_s", "tokens_per_s"}


def _config(data, out, **changes) -> PretrainConfig:
    values = dict(
        data=[str(d) for d in data],
        preset="tiny",
        out=str(out),
        seq_len=128,
        batch_size=8,
        lr=5e-3,
        warmup_steps=3,
        checkpoint_every=100,
        seed=1,
    )
    return PretrainConfig(**{**values, **changes})


def _quiet(message: str) -> None:
    pass


def test_masked_loss_falls_on_lambda(lambda_shards, tmp_path):
    run = tmp_path / "run"
    result = pretrain(_config([lambda_shards], run, max_steps=25), log=_quiet)
    assert result.status == "finished" and result.step == 25
    records = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, 26))
    first = sum(r["loss"] for r in records[:3]) / 3
    last = sum(r["loss"] for r in records[-5:]) / 5
    assert first > 2.0  # about ln(10) at initialisation
    assert last < 1.55 and last < first - 0.5, (first, last)
    for key in ("accuracy", "perplexity", "lr", "tokens_per_s", "masked_tokens", "seq_len"):
        assert key in records[-1]
    assert records[-1]["perplexity"] == pytest.approx(torch.tensor(records[-1]["loss"]).exp().item())
    assert records[-1]["accuracy"] > 0.28  # better than a quarter: base composition at least
    assert (run / "metrics.png").stat().st_size > 1000
    model = from_pretrained(run / "model")
    assert model.config.preset == "tiny"
    assert [step for step, _ in list_checkpoints(run)] == [25]
    with pytest.raises(RunExistsError, match="--resume"):
        pretrain(_config([lambda_shards], run, max_steps=25), log=_quiet)


def test_interrupted_run_resumes_exactly(lambda_shards, tmp_path):
    # accumulation (2 passes per step at full length) and sequence-length warm-up included
    changes = dict(
        max_steps=8,
        seq_len=64,
        batch_size=4,
        tokens_per_step=512,
        seq_len_start=16,
        seq_len_warmup_steps=4,
        deterministic=True,
    )
    whole = pretrain(_config([lambda_shards], tmp_path / "whole", **changes), log=_quiet)
    assert whole.status == "finished"

    def stop_at_3(step: int) -> bool:
        if step == 3:  # a real SIGTERM, handled by the loop's handler
            os.kill(os.getpid(), signal.SIGTERM)
        return False

    split = tmp_path / "split"
    first = pretrain(_config([lambda_shards], split, **changes), should_stop=stop_at_3, log=_quiet)
    assert (first.status, first.step, first.signal) == ("interrupted", 3, signal.SIGTERM)
    assert not (split / "model").exists()
    second = pretrain(_config([lambda_shards], split, **changes), resume=True, log=_quiet)
    assert (second.status, second.step) == ("finished", 8)

    def strip(records):
        return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]

    a = strip(read_metrics(tmp_path / "whole" / "metrics.jsonl"))
    b = strip(read_metrics(split / "metrics.jsonl"))
    assert [r["seq_len"] for r in a] == [16, 16, 32, 32, 64, 64, 64, 64]
    assert a == b
    wa = from_pretrained(tmp_path / "whole" / "model").state_dict()
    wb = from_pretrained(split / "model").state_dict()
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def test_resume_passes_over_a_checkpoint_copied_in_part(lambda_shards, tmp_path):
    run = tmp_path / "run"
    changes = dict(seq_len=64, batch_size=2, checkpoint_every=1, model={"d_model": 16})
    pretrain(_config([lambda_shards], run, max_steps=2, **changes), log=_quiet)
    lost = checkpoint_dir(run, 2) / "part-0000.safetensors"
    lost.unlink()  # a transfer that stopped before this file
    notes = []
    result = pretrain(_config([lambda_shards], run, max_steps=2, **changes), resume=True, log=notes.append)
    assert (result.status, result.step) == ("finished", 2)
    assert any(f"skipping the checkpoint of step 2, which is incomplete: {lost}: missing" in n for n in notes)
    assert any(n.startswith(f"resuming {run} at step 1") for n in notes), notes

    for _, directory in list_checkpoints(run):  # nothing complete left: --resume must not start afresh
        (directory / "manifest.json").unlink()
    metrics = (run / "metrics.jsonl").read_bytes()
    with pytest.raises(IncompleteStateError, match="manifest.json: missing.*no complete checkpoint"):
        pretrain(_config([lambda_shards], run, max_steps=3, **changes), resume=True, log=_quiet)
    assert (run / "metrics.jsonl").read_bytes() == metrics


def test_all_n_data_gives_zero_loss_not_nan(all_n_shards, tmp_path):
    run = tmp_path / "alln"
    result = pretrain(_config([all_n_shards], run, max_steps=2, max_n_fraction=1.0), log=_quiet)
    assert result.status == "finished"
    records = read_metrics(run / "metrics.jsonl")
    assert [r["loss"] for r in records] == [0.0, 0.0]
    assert [r["masked_tokens"] for r in records] == [0, 0]
    model = from_pretrained(run / "model")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_model_loss_of_an_all_n_batch_is_zero():
    import numpy as np

    from genomamba import alphabet as ab
    from genomamba.model import build_model
    from genomamba.train.masking import bert_mask

    ids = np.full((2, 64), ab.N_ID, dtype=np.uint8)
    inputs, labels = bert_mask(ids, np.random.default_rng(0))
    model = build_model("tiny")
    out = model(torch.from_numpy(inputs), labels=torch.from_numpy(labels))
    out.loss.backward()
    assert out.loss.item() == 0.0
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_metrics_with_a_torn_last_line_are_read_and_resumed_past(tmp_path):
    from genomamba.errors import InputDataError
    from genomamba.train.metrics import MetricsWriter, read_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.9}\n{"step": 3, "lo')  # killed mid-write
    assert [r["step"] for r in read_metrics(path)] == [1, 2]
    writer = MetricsWriter(path, truncate_after=2)  # what --resume from step 2 does
    writer.write({"step": 3, "loss": 1.8})
    writer.close()
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3]
    path.write_text('{"step": 1}\n{"st\n{"step": 3}\n')  # damage before the last line is an error
    with pytest.raises(InputDataError, match=r"metrics.jsonl: line 2: not a metrics record"):
        read_metrics(path)


@pytest.fixture(scope="module")
def short_window_shards(tmp_path_factory):
    """Five one-window records: one of 64 bases, four of 16 (crops of 64 are 37.5% padding)."""
    from genomamba.io.tokenize import TokenizeOptions, tokenize_files

    root = tmp_path_factory.mktemp("short_windows")
    bases = "ACGTTGCAGGCTAACT"
    (root / "short.fa").write_text(f">long\n{bases * 4}\n" + "".join(f">s{i}\n{bases}\n" for i in range(4)))
    tokenize_files([root / "short.fa"], root / "shards", TokenizeOptions(window=512))
    return root / "shards"


def test_logged_tokens_count_real_bases_not_padding(short_window_shards, tmp_path):
    from genomamba.alphabet import PAD_ID
    from genomamba.train.data import CropSampler, micro_batch_rng, open_shards

    lines = []
    config = _config([short_window_shards], tmp_path / "run", seq_len=64, batch_size=4, max_steps=3,
                     model={"d_model": 16})
    pretrain(config, log=lines.append)
    sampler = CropSampler(open_shards([short_window_shards]), config.seed, config.max_n_fraction, True)
    crops = [sampler.sample(4, 64, micro_batch_rng(config.seed, step)) for step in range(3)]
    real = [int((ids != PAD_ID).sum()) for ids in crops]
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["tokens"] for r in records] == real
    assert any(count < 4 * 64 for count in real)  # some crops were padded, and their padding not counted
    assert "160 bases/step expected (256 crop tokens, 38% of them padding)" in lines[0]
    assert lines[1].startswith("warning: crops of 64 bases are 38% padding on average")


def test_a_crop_longer_than_every_window_is_an_error_before_run_dir_exists(short_window_shards, tmp_path):
    from genomamba.errors import InputDataError

    run = tmp_path / "run"
    message = (r"crops of --seq-len 100 are longer than every window of the token shards, the longest of "
               r"which has 64 bases \(tokenized with --window 512\): crops would be 60% padding on average; "
               r"use --seq-len 64 or less, or tokenize with --window 100 or more")
    with pytest.raises(InputDataError, match=message):
        pretrain(_config([short_window_shards], run, seq_len=100), log=_quiet)
    assert not run.exists()


@pytest.mark.parametrize(("fail_at", "kept"), [(1, False), (2, True)])
def test_a_failed_run_leaves_run_dir_only_when_it_can_be_resumed(lambda_shards, tmp_path, fail_at, kept):
    run = tmp_path / "runs" / "r"

    def fail(step: int) -> bool:
        if step == fail_at:
            raise OSError(28, "No space left on device")
        return False

    config = _config([lambda_shards], run, seq_len=64, batch_size=2, max_steps=3, checkpoint_every=1,
                     model={"d_model": 16})
    with pytest.raises(OSError):
        pretrain(config, should_stop=fail, log=_quiet)
    if kept:  # the checkpoint of step 1 is there to resume from
        assert [step for step, _ in list_checkpoints(run)] == [1]
        assert (run / "run_config.json").is_file()
    else:
        assert not (tmp_path / "runs" / "r").exists()
