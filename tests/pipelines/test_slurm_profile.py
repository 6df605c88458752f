"""profiles/slurm: a dry run through the SLURM executor plugin asks for the config's GPUs on the GPU
partition for the model rules (one for the single-process ones, the data-parallel ones under
torchrun), and the light rules' threads as --cpus-per-task (no cluster needed)."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.pipelines.workflow_runs import REPO_ROOT, run_snakemake

pytest.importorskip("snakemake")
pytest.importorskip("snakemake_executor_plugin_slurm")

DATA_PARALLEL_RULES = ("pretrain", "finetune", "embed", "predict", "score_variants")
MODEL_RULES = (*DATA_PARALLEL_RULES, "evaluate")
LIGHT_RULES = ("fetch_file", "validate_genome", "tokenize_genome", "make_task")


def _job_resources(dry_run: str) -> dict[str, dict[str, str]]:
    """rule -> its resources as printed by the dry run (the last job of each rule)."""
    jobs = {}
    for rule, resources in re.findall(r"^rule (\w+):\n.*?^    resources: (.*?)$", dry_run, re.M | re.S):
        jobs[rule] = dict(item.split("=", 1) for item in resources.split(", "))
    return jobs


@pytest.mark.parametrize("gpus", [1, 4])
def test_dry_run_asks_for_gpus_on_gpu_rules_and_threads_as_cpus(workflow, gpus):
    (workflow / "config" / "cluster.yaml").write_text(
        (workflow / "config" / "demo.yaml").read_text()
        + f"compute: {{threads: 8, mem_mb: 32000, gpus: {gpus}}}\n"
    )
    # --cores: a dry run caps threads at it (1 when not given); a real cluster run does not
    result = run_snakemake(workflow, "-n", "--profile", "profiles/slurm", "--cores", "64",
                           "--configfile", "config/cluster.yaml")
    assert result.returncode == 0, result.stderr
    jobs = _job_resources(result.stdout)
    for rule in MODEL_RULES:
        wanted = str(gpus if rule in DATA_PARALLEL_RULES else 1)
        assert jobs[rule]["slurm_partition"] == "gpu" and jobs[rule]["gpu"] == wanted, (rule, jobs[rule])
        assert jobs[rule]["cpus_per_task"] == "8" and jobs[rule]["mem_mb"] == "32000", (rule, jobs[rule])
    for rule in LIGHT_RULES:
        assert jobs[rule]["cpus_per_task"] == "1" and "gpu" not in jobs[rule], (rule, jobs[rule])
        assert jobs[rule].get("slurm_partition") != "gpu", (rule, jobs[rule])
    # the model rules hand their threads to torch as well (the profile prints shell commands)
    launcher = "genomamba"
    if gpus > 1:
        launcher = f'torchrun --standalone --nproc-per-node {gpus} "$(command -v genomamba)"'
    assert re.search(rf"^Shell command: {re.escape(launcher)} pretrain .* --threads 8 ", result.stdout, re.M)
    assert re.search(rf"^Shell command: {re.escape(launcher)} finetune ", result.stdout, re.M)
    assert re.search(r"^Shell command: genomamba evaluate ", result.stdout, re.M)


def test_profile_names_only_rules_of_the_workflow(workflow):
    profile = yaml.safe_load((REPO_ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    result = run_snakemake(workflow, "--list-rules")
    assert result.returncode == 0, result.stderr
    rules = set(result.stdout.split())
    assert set(profile["set-resources"]) <= rules
    # every rule that runs a model runs on the GPU partition; benchmark only runs when configured
    assert set(profile["set-resources"]) == {*MODEL_RULES, "benchmark"}
