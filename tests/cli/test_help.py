"""Every command has help with an example, is in README.md's command list, and shows its defaults
from the configuration dataclasses; help never imports torch.

The commands are discovered from the click group (workflow's subcommands included), so a new
command is covered without editing this file.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from genomamba.cli import main
from tests.conftest import REPO_ROOT


def _commands(group: click.Group, ctx: click.Context, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command of ``group`` as its words after ``genomamba`` (a group and each of its commands)."""
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found += _commands(command, click.Context(command, parent=ctx), (*prefix, name))
    return found


COMMANDS = _commands(main, click.Context(main))


def test_the_commands_are_discovered():
    assert {("tokenize",), ("predict",), ("workflow",), ("workflow", "init")} <= set(COMMANDS)


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_help_exits_0_with_an_example_and_the_command_is_in_the_readme(words):
    result = CliRunner().invoke(main, [*words, "--help"])
    assert result.exit_code == 0, result.output
    usage = f"genomamba {' '.join(words)}"
    examples = [line.strip() for line in result.output.splitlines() if line.strip().startswith(usage + " ")]
    assert examples, f"`{usage} --help` shows no example line starting with {usage!r}"
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    shown = re.search(rf"genomamba {re.escape(words[0])}\b", readme)
    assert shown, f"README.md never shows `genomamba {words[0]}`"


def test_help_imports_no_torch():
    """The group's help and every command's, in a fresh interpreter, leave torch unimported."""
    code = (
        "import json, sys\n"
        "from genomamba.cli import main\n"
        f"for words in [[], *{[list(w) for w in COMMANDS]!r}]:\n"
        "    try:\n"
        "        main([*words, '--help'], prog_name='genomamba')\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, words\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'triton'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


# option of a command -> (configuration dataclass, field) its default comes from
CONFIG_DEFAULTS = [
    ("pretrain", "--max-steps", "genomamba.train.config", "PretrainConfig", "max_steps"),
    ("pretrain", "--lr", "genomamba.train.config", "PretrainConfig", "lr"),
    ("finetune", "--epochs", "genomamba.train.finetune_data", "FinetuneConfig", "epochs"),
    ("finetune", "--lr", "genomamba.train.finetune_data", "FinetuneConfig", "lr"),
    ("evaluate", "--batch-size", "genomamba.train.finetune_data", "FinetuneConfig", "eval_batch_size"),
    ("tokenize", "--window", "genomamba.io.tokenize", "TokenizeOptions", "window"),
    ("tokenize", "--shard-size", "genomamba.io.tokenize", "TokenizeOptions", "shard_tokens"),
]


@pytest.mark.parametrize(("command", "option", "module", "cls", "field"), CONFIG_DEFAULTS)
def test_help_shows_the_configuration_default(command, option, module, cls, field, monkeypatch):
    """The shown default is the dataclass's, read when help is shown: change it and help follows."""
    import importlib

    from genomamba.cli.options import field_default

    config = getattr(importlib.import_module(module), cls)
    default = {f.name: f.default for f in dataclasses.fields(config)}[field]
    assert f"[default: {default};" in _option_help(command, option)
    monkeypatch.setattr(config.__dataclass_fields__[field], "default", 7)
    field_default.cache_clear()
    try:
        assert "[default: 7;" in _option_help(command, option)
    finally:
        field_default.cache_clear()


def _option_help(command: str, option: str) -> str:
    """The help text of ``option`` (its lines joined) in ``genomamba command --help``."""
    result = CliRunner().invoke(main, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(option + " "))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].strip().startswith("-")), len(lines))
    return " ".join(line.strip() for line in lines[start:end])


def test_benchmark_defaults_come_from_its_configuration():
    from genomamba.suite.runner import BenchmarkConfig

    config = BenchmarkConfig(suites=[], out="x")
    assert f"[default: {', '.join(config.methods)}]" in _option_help("benchmark", "--method")
    assert f"[default: {','.join(map(str, config.seeds))}]" in _option_help("benchmark", "--seeds")
