"""profiles/slurm: a dry run through the SLURM executor plugin asks for a GPU on the GPU partition
for the model rules, and the light rules' threads as --cpus-per-task (no cluster needed)."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.pipelines.workflow_runs import REPO_ROOT, run_snakemake

pytest.importorskip("snakemake")
pytest.importorskip("snakemake_executor_plugin_slurm")

MODEL_RULES = ("pretrain", "finetune", "evaluate", "embed", "predict", "score_variants")
LIGHT_RULES = ("fetch_file", "validate_genome", "tokenize_genome", "make_task")


def _job_resources(dry_run: str) -> dict[str, dict[str, str]]:
    """rule -> its resources as printed by the dry run (the last job of each rule)."""
    jobs = {}
    for rule, resources in re.findall(r"^rule (\w+):\n.*?^    resources: (.*?)$", dry_run, re.M | re.S):
        jobs[rule] = dict(item.split("=", 1) for item in resources.split(", "))
    return jobs


def test_dry_run_asks_for_gpus_on_gpu_rules_and_threads_as_cpus(workflow):
    (workflow / "config" / "cluster.yaml").write_text(
        (workflow / "config" / "demo.yaml").read_text() + "compute: {threads: 8, mem_mb: 32000}\n"
    )
    # --cores: a dry run caps threads at it (1 when not given); a real cluster run does not
    result = run_snakemake(workflow, "-n", "--profile", "profiles/slurm", "--cores", "64",
                           "--configfile", "config/cluster.yaml")
    assert result.returncode == 0, result.stderr
    jobs = _job_resources(result.stdout)
    for rule in MODEL_RULES:
        assert jobs[rule]["slurm_partition"] == "gpu" and jobs[rule]["gpu"] == "1", (rule, jobs[rule])
        assert jobs[rule]["cpus_per_task"] == "8" and jobs[rule]["mem_mb"] == "32000", (rule, jobs[rule])
    for rule in LIGHT_RULES:
        assert jobs[rule]["cpus_per_task"] == "1" and "gpu" not in jobs[rule], (rule, jobs[rule])
        assert jobs[rule].get("slurm_partition") != "gpu", (rule, jobs[rule])
    # the model rules hand their threads to torch as well (the profile prints shell commands)
    assert re.search(r"^Shell command: genomamba pretrain .* --threads 8 ", result.stdout, re.M)


def test_profile_names_only_rules_of_the_workflow(workflow):
    profile = yaml.safe_load((REPO_ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    result = run_snakemake(workflow, "--list-rules")
    assert result.returncode == 0, result.stderr
    rules = set(result.stdout.split())
    assert set(profile["set-resources"]) <= rules
    # every rule that runs a model gets a GPU; benchmark only runs when configured
    assert set(profile["set-resources"]) == {*MODEL_RULES, "benchmark"}
