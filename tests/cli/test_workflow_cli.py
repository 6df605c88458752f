"""`genomamba workflow init`: writes the workflow, refuses a non-empty folder with exit 2 unless --force."""

from __future__ import annotations

from click.testing import CliRunner

from genomamba.cli import main


def run(args):
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.stdout, result.stderr


def test_workflow_is_a_command_with_help():
    code, stdout, _ = run(["--help"])
    assert code == 0 and "workflow" in stdout
    code, stdout, _ = run(["workflow", "init", "--help"])
    assert code == 0 and "--force" in stdout and "snakemake --cores 2" in stdout


def test_init_prints_next_steps_and_refuses_to_write_over_a_folder(tmp_path):
    wf = tmp_path / "my run"
    code, stdout, stderr = run(["workflow", "init", str(wf)])
    assert code == 0, stderr
    assert (wf / "Snakefile").is_file() and (wf / "data" / "demo" / "yeast_chrI_snvs.vcf").is_file()
    assert f"cd '{wf}'" in stdout and "snakemake --cores 2 --configfile config/demo.yaml" in stdout

    (wf / "config" / "demo.yaml").write_text("edited")
    code, stdout, stderr = run(["workflow", "init", str(wf)])
    assert code == 2 and stdout == ""
    assert f"genomamba workflow init: error: {wf}: folder is not empty" in stderr and "--force" in stderr
    assert (wf / "config" / "demo.yaml").read_text() == "edited"

    code, _, stderr = run(["workflow", "init", "--force", str(wf)])
    assert code == 0, stderr
    assert (wf / "config" / "demo.yaml").read_text() != "edited"
