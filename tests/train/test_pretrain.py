"""The pretraining loop on CPU with the tiny preset: learning, exact resume, all-N data, run outputs."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from genomamba.checkpoint import from_pretrained
from genomamba.train.config import PretrainConfig
from genomamba.train.metrics import read_metrics
from genomamba.train.pretrain import RunExistsError, pretrain
from genomamba.train.state import list_checkpoints

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
