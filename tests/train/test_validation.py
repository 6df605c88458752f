"""Held-out validation during pretraining (genomamba.train.validation) on CPU with a tiny model:
when it runs, what it records, that it is fixed, and that it leaves training untouched."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genomamba.io.tokenize import TokenizeOptions, tokenize_files
from genomamba.model import build_model
from genomamba.runtime.device import World
from genomamba.runtime.distributed import Distributed
from genomamba.train.config import PretrainConfig
from genomamba.train.masking import IGNORE_INDEX
from genomamba.train.metrics import read_metrics
from genomamba.train.pretrain import pretrain
from genomamba.train.validation import VAL_METRICS_FILE, Validation

TIMING_KEYS = {"elapsed_s", "tokens_per_s"}
ONE_PROCESS = Distributed(World(), torch.device("cpu"), None)


@pytest.fixture(scope="module")
def heldout(tmp_path_factory, demo_data):
    """Two validation sets: the lambda genome in 1,024-base windows, and a short synthetic record."""
    root = tmp_path_factory.mktemp("heldout")
    tokenize_files([demo_data / "lambda_virus.fa"], root / "lambda", TokenizeOptions(window=1024))
    rng = np.random.default_rng(7)
    (root / "short.fa").write_text(">s\n" + "".join(rng.choice(list("ACGT"), 300)) + "N" * 20 + "\n")
    tokenize_files([root / "short.fa"], root / "short", TokenizeOptions(window=1024))
    return [root / "lambda", root / "short"]


def _config(data, out, val_data=(), **changes) -> PretrainConfig:
    values = dict(data=[str(d) for d in data], val_data=[str(d) for d in val_data], preset="tiny",
                  model={"d_model": 16}, out=str(out), seq_len=64, batch_size=4, lr=5e-3, warmup_steps=2,
                  checkpoint_every=100, seed=3, val_tokens=512, val_seq_lens=[32, 128], deterministic=True)
    return PretrainConfig(**{**values, **changes})


def _quiet(message: str) -> None:
    pass


def test_records_every_val_every_steps_and_at_the_end_for_each_set_and_length(lambda_shards, heldout,
                                                                               tmp_path):
    lines = []
    pretrain(_config([lambda_shards], tmp_path / "run", heldout, max_steps=5, val_every=2), log=lines.append)
    records = read_metrics(tmp_path / "run" / VAL_METRICS_FILE)
    assert [(r["step"], r["set"], r["seq_len"]) for r in records] == [
        (step, name, length) for step in (2, 4, 5) for name in ("lambda", "short") for length in (32, 128)
    ]
    for r in records:
        assert r["tokens_seen"] == r["step"] * 4 * 64
        assert 0.0 < r["accuracy"] < 1.0 and r["perplexity"] == pytest.approx(np.exp(r["loss"]))
        assert r["loss"] > 1.0  # five steps of a 16-wide model: far from learnt
    by_set = {(r["step"], r["set"]): [] for r in records}
    for r in records:
        by_set[(r["step"], r["set"])].append(r)
    for short, long in by_set.values():
        # the crop lengths score the same bases under the same masks; only the context differs
        assert short["masked_tokens"] == long["masked_tokens"] > 0
        assert short["tokens"] == long["tokens"]
        assert (short["crops"], long["crops"]) == (16, 4)  # 512 tokens: 4 crops of 128, 16 pieces of 32
    assert (tmp_path / "run" / "metrics.png").stat().st_size > 1000  # validation curves drawn with it
    validation_lines = [line for line in lines if line.startswith("validation at step")]
    assert len(validation_lines) == 3
    assert validation_lines[0].startswith("validation at step 2 (512 tokens seen, ")
    assert all(part in validation_lines[0] for part in ("loss lambda ", "@32 ", "@128; short "))


def test_training_is_the_same_with_and_without_validation_and_validation_survives_a_resume(
    lambda_shards, heldout, tmp_path
):
    changes = dict(max_steps=6, val_every=2)
    plain = pretrain(_config([lambda_shards], tmp_path / "plain", **changes), log=_quiet)
    whole = pretrain(_config([lambda_shards], tmp_path / "whole", heldout, **changes), log=_quiet)
    assert plain.status == whole.status == "finished"
    assert not (tmp_path / "plain" / VAL_METRICS_FILE).exists()

    def strip(run):
        records = read_metrics(run / "metrics.jsonl")
        return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]

    assert strip(tmp_path / "plain") == strip(tmp_path / "whole")  # validation does not perturb training
    split = tmp_path / "split"
    first = pretrain(_config([lambda_shards], split, heldout, **changes), should_stop=lambda s: s == 3,
                     log=_quiet)
    assert (first.status, first.step) == ("interrupted", 3)
    # what ran after the checkpoint is dropped on resume: here, nothing; the file holds step 2 only
    assert {r["step"] for r in read_metrics(split / VAL_METRICS_FILE)} == {2}
    second = pretrain(_config([lambda_shards], split, heldout, **changes), resume=True, log=_quiet)
    assert second.status == "finished"
    assert read_metrics(split / VAL_METRICS_FILE) == read_metrics(tmp_path / "whole" / VAL_METRICS_FILE)
    assert strip(split) == strip(tmp_path / "whole")


def test_the_same_crops_and_numbers_every_time_whatever_the_run_seed(lambda_shards, heldout, tmp_path):
    one = Validation(_config([lambda_shards], tmp_path, heldout, seed=1))
    other = Validation(_config([lambda_shards], tmp_path, heldout, seed=2, mask_prob=0.15))
    for a, b in zip(one.sets, other.sets, strict=True):
        for length in (32, 128):
            assert np.array_equal(a.crops[length][0], b.crops[length][0])
            assert np.array_equal(a.crops[length][1], b.crops[length][1])
        # the pieces of 32 are the crops of 128 cut up (scoring nothing: dropped)
        inputs, labels = a.crops[128]
        pieces = labels.reshape(-1, 32)
        assert np.array_equal(a.crops[32][1], pieces[(pieces != IGNORE_INDEX).any(axis=1)])
        assert np.array_equal(a.crops[32][0], inputs.reshape(-1, 32)[(pieces != IGNORE_INDEX).any(axis=1)])

    torch.manual_seed(0)
    model = build_model("tiny", d_model=16)
    model.train()
    global_states = (torch.get_rng_state(), np.random.get_state()[1].copy())
    first = one.evaluate(model, 4, ONE_PROCESS)
    second = one.evaluate(model, 4, ONE_PROCESS)
    assert first == second and model.training
    assert torch.equal(torch.get_rng_state(), global_states[0])
    assert np.array_equal(np.random.get_state()[1], global_states[1])
    assert json.dumps(first)  # JSON-ready records


def test_a_bad_val_data_directory_is_refused_before_run_dir_exists(lambda_shards, tmp_path):
    from genomamba.errors import InputDataError

    not_shards = tmp_path / "plain_folder"
    not_shards.mkdir()
    for bad, message in ((tmp_path / "missing", "no such token-shard directory"),
                         (not_shards, "not a token-shard directory")):
        with pytest.raises(InputDataError, match=message) as info:
            pretrain(_config([lambda_shards], tmp_path / "run", [bad], max_steps=2), log=_quiet)
        assert str(bad) in str(info.value)
        assert not (tmp_path / "run").exists()
