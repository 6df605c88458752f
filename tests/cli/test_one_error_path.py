"""One error path for every command: commands raise, the boundary (genomamba.cli.boundary) prints.

No command module catches the project's errors itself; a UsageError the library raises is shown as
click shows its own (usage line, message, exit 2); under torchrun each process names its rank.
"""

from __future__ import annotations

import ast

from click.testing import CliRunner

import genomamba.errors
from genomamba.cli import main
from genomamba.errors import EXIT_DATA, EXIT_USAGE, GenomambaError
from tests.conftest import REPO_ROOT

PROJECT_ERRORS = {name for name, value in vars(genomamba.errors).items()
                  if isinstance(value, type) and issubclass(value, GenomambaError)} | {"ConfigError"}


def test_no_command_catches_the_project_errors():
    caught = []
    for path in sorted((REPO_ROOT / "genomamba" / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                types = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
                names = {t.attr if isinstance(t, ast.Attribute) else getattr(t, "id", "") for t in types}
                caught += [f"{path.name}:{node.lineno}: {name}" for name in names & PROJECT_ERRORS
                           if path.name not in ("__init__.py", "boundary.py")]
    assert caught == []


def test_a_usage_error_of_the_library_shows_the_usage_line(tmp_path):
    fasta = tmp_path / "g.fa"
    fasta.write_text(">chr1\nACGTACGT\n")
    result = CliRunner().invoke(main, ["tokenize", str(fasta), "-o", str(tmp_path / "s"),
                                       "--region", "chr1:0-4"])
    assert result.exit_code == EXIT_USAGE
    assert "Usage: main tokenize [OPTIONS] FASTA..." in result.output
    assert "Error: " in result.output and "START must be at least 1" in result.output


def test_under_torchrun_each_error_line_names_the_rank(tmp_path, monkeypatch):
    bad = tmp_path / "bad.fa"
    bad.write_text(">r\nACGTXACGT\n")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    result = CliRunner().invoke(main, ["tokenize", str(bad), "-o", str(tmp_path / "s")])
    assert result.exit_code == EXIT_DATA
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith("error: rank 1: ") and "bad.fa" in line
    monkeypatch.delenv("WORLD_SIZE")
    alone = CliRunner().invoke(main, ["tokenize", str(bad), "-o", str(tmp_path / "s")])
    assert any(line.startswith("error: ") and "rank" not in line for line in alone.stderr.splitlines())


def test_per_base_refuses_only_window_options_that_change_something(tmp_path):
    fasta = tmp_path / "g.fa"
    fasta.write_text(">chr1\nACGTACGT\n")
    not_a_model = tmp_path / "model"
    not_a_model.mkdir()
    args = ["embed", str(not_a_model), str(fasta), "--per-base", "-o", str(tmp_path / "emb"),
            "--device", "cpu"]
    refused = CliRunner().invoke(main, [*args, "--window", "4", "--last", "shift"])
    assert refused.exit_code == EXIT_USAGE and "--window, --last do not apply" in refused.output
    # their default values given explicitly change nothing: the run goes on (to the missing model)
    defaults = CliRunner().invoke(main, [*args, "--last", "keep", "--pooling", "mean"])
    assert defaults.exit_code == EXIT_DATA, defaults.output
