"""``--threads N`` of the model commands: it sets torch's CPU threads before the command runs."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from genomamba.cli import main
from tests.infer.infer_cases import save_model

MODEL_COMMANDS = (
    "pretrain", "finetune", "evaluate", "embed", "predict", "score-variants", "track", "benchmark",
)


@pytest.fixture
def restore_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_every_model_command_has_the_option(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0 and "--threads INTEGER RANGE" in result.output


def test_threads_reach_torch_before_the_command_runs(tmp_path, demo_data, monkeypatch, restore_torch_threads):
    import genomamba.infer.embed

    seen = []

    def fake_embed(*args, **options):
        seen.append((torch.get_num_threads(), options))
        return {}

    monkeypatch.setattr(genomamba.infer.embed, "embed_fasta", fake_embed)
    wanted = 3 if torch.get_num_threads() != 3 else 1  # a count torch would not have chosen itself
    model = save_model(tmp_path / "model", rc_strategy="ph")
    result = CliRunner().invoke(main, ["embed", str(model), str(demo_data / "lambda_virus.fa"),
                                       "-o", str(tmp_path / "e.tsv"), "--threads", str(wanted)])
    assert result.exit_code == 0, result.output
    [(threads, options)] = seen
    assert threads == wanted and "threads" not in options  # torch's setting, not a library argument


def test_without_the_option_torch_keeps_its_own_count(tmp_path, monkeypatch, restore_torch_threads):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    result = CliRunner().invoke(main, ["pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "--preset is required" in result.output  # parsed, then a usage error
    assert calls == []


def test_zero_threads_is_a_usage_error():
    result = CliRunner().invoke(main, ["predict", ".", "-o", "x.tsv", "--threads", "0"])
    assert result.exit_code == 2 and "--threads" in result.output
