"""`genomamba pretrain` on the command line: a short run, resume rules, and the documented errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from genomamba.cli import main


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


@pytest.mark.parametrize(
    ("run_yaml", "message"),
    [
        # a typo in a model override: the full dotted path and the field meant
        ("model: {mixer: {d_stat: 32}}\n", "model.mixer.d_stat: unknown key (did you mean d_state?)"),
        ("seq_lenght: 64\n", "seq_lenght: unknown key (did you mean seq_len?)"),
        ("learning_rate: 0.1\n", "learning_rate: unknown key (known: data, preset, model, out,"),
        ("model: {mixer: {d_state: -1}}\n", "model.mixer.d_state: must be a positive integer, got -1"),
        ("batch_size: 0\n", "batch_size: must be a positive integer, got 0"),
        ("mask_prob: 2\n", "mask_prob: must lie in [0, 1], got 2"),
        ("model: {norm_eps: small}\n", "model.norm_eps: must be a number, got 'small'"),
        ("lr: 1e-3\n", "lr: must be a number, got '1e-3' (text, not a number: write exponents"),
    ],
)
def test_bad_run_config_exits_2_naming_file_and_key_before_anything_is_written(tmp_path, run_yaml, message):
    config = tmp_path / "run.yaml"
    config.write_text(run_yaml)
    out = tmp_path / "o"
    # the shard directory does not exist: the config is checked before the data, and before RUN_DIR
    result = _run("--data", str(tmp_path / "no-shards"), "--preset", "tiny", "--out", str(out),
                  "--config", str(config))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {config}: {message}"), lines
    assert not out.exists()


def test_bad_run_config_leaves_an_existing_run_dir_as_it_was(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model: {mixer: {d_stat: 32}}\n")
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    result = _run("--data", str(tmp_path / "no-shards"), "--preset", "tiny", "--out", str(out),
                  "--config", str(config))
    assert result.exit_code == 2 and "model.mixer.d_stat" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_bad_preset_override_on_the_command_line_names_no_file(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("seq_len: 64\n")
    result = _run("--data", str(tmp_path / "no-shards"), "--preset", "tiny", "--out", str(tmp_path / "o"),
                  "--config", str(config), "--tokens-per-step", "32")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: tokens_per_step: must be at least seq_len (64), got 32"


def test_missing_preset_exits_2(lambda_shards, tmp_path):
    no_preset = _run("--data", str(lambda_shards), "--out", str(tmp_path / "o"))
    assert no_preset.exit_code == 2 and "--preset is required" in no_preset.output


def _damaged_copy(lambda_shards, tmp_path, damage: str):
    """A copy of the shards with one kind of damage (see the test below)."""
    import shutil

    shards = tmp_path / "shards"
    shutil.copytree(lambda_shards, shards)
    path = shards / "tokens-00000.npy"
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        del data[-1000:]
    elif damage == "token":
        data[128 + 700] = 42  # window 1 (bases 512-1024 of lambda)
    else:  # "bit": a base that is still a base; only the sha256 can tell
        data[128 + 700] = 5 if data[128 + 700] != 5 else 6
    path.write_bytes(bytes(data))
    return shards


@pytest.mark.parametrize(
    ("damage", "extra", "message"),
    [
        ("truncated", [], "tokens-00000.npy: truncated: "),
        ("token", [], "tokens-00000.npy: token id 42 at offset 700 (window 1, "),
        ("bit", ["--verify-shards"], "tokens-00000.npy: sha256 "),
    ],
)
def test_damaged_shards_exit_65_before_run_dir_exists(lambda_shards, tmp_path, damage, extra, message):
    shards = _damaged_copy(lambda_shards, tmp_path, damage)
    out = tmp_path / "run"
    result = _run("--data", str(shards), "--preset", "tiny", "--out", str(out), "--seq-len", "64", *extra)
    assert result.exit_code == 65, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "genomamba tokenize --force" in errors[0]
    assert not out.exists()


def test_seq_len_longer_than_every_window_exits_65_naming_both(lambda_shards, tmp_path):
    out = tmp_path / "run"
    result = _run("--data", str(lambda_shards), "--preset", "tiny", "--out", str(out), "--seq-len", "4096")
    assert result.exit_code == 65
    assert "crops of --seq-len 4096 are longer than every window" in result.output
    assert "the longest of which has 512 bases (tokenized with --window 512)" in result.output
    assert not out.exists()


def test_unknown_preset_exits_2_listing_the_presets(lambda_shards, tmp_path):
    out = tmp_path / "run"
    result = _run("--data", str(lambda_shards), "--preset", "gigantic", "--out", str(out))
    assert result.exit_code == 2
    assert "unknown preset 'gigantic'; choose from tiny, small-1k, base-131k, long-1m" in result.output
    assert not out.exists()


def test_val_options_reach_the_run_and_validation_is_recorded(lambda_shards, tmp_path):
    out = tmp_path / "run"
    result = _run("--data", str(lambda_shards), "--preset", "tiny", "--out", str(out), "--seq-len", "64",
                  "--batch-size", "2", "--max-steps", "2", "--val-data", str(lambda_shards),
                  "--val-every", "1", "--val-tokens", "256", "--val-seq-len", "128", "--val-seq-len", "32")
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "run_config.json").read_text())
    assert (saved["val_data"], saved["val_every"], saved["val_tokens"], saved["val_seq_lens"]) == (
        [str(lambda_shards)], 1, 256, [128, 32])
    records = [json.loads(line) for line in (out / "val_metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["set"], r["seq_len"]) for r in records] == [
        (step, "lambda", length) for step in (1, 2) for length in (32, 128)]
    assert "validation at step 2 (256 tokens seen, " in result.stderr


@pytest.mark.parametrize(("make", "code", "message"), [
    ("missing", 65, "no such token-shard directory (make one with `genomamba tokenize`)"),
    ("empty", 65, "not a token-shard directory (no manifest.json); run `genomamba tokenize`"),
    ("twice", 2, "val_data: validation sets are named by their directory, and lambda names more than one"),
])
def test_a_bad_val_data_directory_exits_with_one_line_before_anything_is_written(
    lambda_shards, tmp_path, make, code, message
):
    bad = tmp_path / ("lambda" if make == "twice" else "heldout")
    if make != "missing":
        bad.mkdir()
    out = tmp_path / "run"
    result = _run("--data", str(lambda_shards), "--preset", "tiny", "--out", str(out), "--seq-len", "64",
                  "--val-data", str(lambda_shards), "--val-data", str(bad))
    assert result.exit_code == code, result.output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and message in errors[0], result.stderr
    if make != "twice":
        assert errors[0].startswith(f"error: {bad}: ")
    assert not out.exists()
