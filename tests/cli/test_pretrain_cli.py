"""`genomamba pretrain` on the command line: a short run, resume rules, and the documented errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from genomamba.cli import main
from genomamba.io.tokenize import TokenizeOptions, tokenize_files


@pytest.fixture(scope="module")
def lambda_shards(tmp_path_factory, demo_data):
    out = tmp_path_factory.mktemp("cli_shards") / "lambda"
    tokenize_files([demo_data / "lambda_virus.fa"], out, TokenizeOptions(window=512))
    return out


def _run(*args):
    return CliRunner().invoke(main, ["pretrain", *args])


def test_short_run_and_resume_rules(lambda_shards, tmp_path):
    out = tmp_path / "run"
    config = tmp_path / "run.yaml"
    config.write_text("lr: 0.004\nmodel:\n  d_model: 16\nrc_augment: false\n")
    base = ["--data", str(lambda_shards), "--preset", "tiny", "--out", str(out), "--seq-len", "64"]
    result = _run(*base, "--config", str(config), "--max-steps", "2", "--batch-size", "2")
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "run_config.json").read_text())
    assert (saved["lr"], saved["model"], saved["rc_augment"], saved["seq_len"]) == (
        0.004,
        {"d_model": 16},
        False,
        64,
    )
    assert (out / "model" / "config.json").is_file()
    assert json.loads((out / "model" / "config.json").read_text())["architecture"]["d_model"] == 16
    again = _run(*base, "--max-steps", "3")
    assert again.exit_code == 1 and "--resume" in again.output
    changed = _run(*base, "--max-steps", "3", "--resume", "--lr", "0.1")
    assert changed.exit_code == 2 and "cannot change lr" in changed.output
    more = _run("--data", str(lambda_shards), "--out", str(out), "--max-steps", "3", "--resume")
    assert more.exit_code == 0, more.output
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]


def test_missing_shard_directory_exits_65(tmp_path):
    result = _run("--data", str(tmp_path / "missing"), "--preset", "tiny", "--out", str(tmp_path / "o"))
    assert result.exit_code == 65
    assert "no such token-shard directory" in result.output and "missing" in result.output


def test_unknown_config_key_exits_2(lambda_shards, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("learning_rate: 0.1\n")
    result = _run(
        "--data",
        str(lambda_shards),
        "--preset",
        "tiny",
        "--out",
        str(tmp_path / "o"),
        "--config",
        str(config),
    )
    assert result.exit_code == 2
    assert "unknown config key(s): learning_rate" in result.output
    assert not (tmp_path / "o").exists()


def test_bad_values_and_missing_preset_exit_2(lambda_shards, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("mask_prob: 2\n")
    common = ["--data", str(lambda_shards), "--out", str(tmp_path / "o")]
    bad = _run(*common, "--preset", "tiny", "--config", str(config))
    assert bad.exit_code == 2 and "mask_prob must lie in [0, 1]" in bad.output
    no_preset = _run(*common)
    assert no_preset.exit_code == 2 and "--preset is required" in no_preset.output
