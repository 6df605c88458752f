"""The Snakemake pipeline: lint, dry-run, config validation, and a real run of the demo config.

Each test runs snakemake in a subprocess inside a temporary copy of the workflow (Snakefile,
pipelines/, config/, data_manifests/, data/demo/: what `genomamba workflow init` writes), so
that nothing is written into the repository and the run is the one `make demo` does.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("snakemake")

from genomamba.io.manifest import load_manifest  # noqa: E402 - after the skip
from tests.pipelines.workflow_runs import REPO_ROOT  # noqa: E402
from tests.pipelines.workflow_runs import run_snakemake as _snakemake  # noqa: E402

# `workflow` (a fresh copy of the workflow) and `demo_run` (the demo config, run once) are fixtures
# of tests/pipelines/conftest.py.


def test_snakefile_is_small_and_rules_use_the_cli_only():
    assert len((REPO_ROOT / "Snakefile").read_text().splitlines()) <= 60
    for smk in sorted((REPO_ROOT / "pipelines").glob("*.smk")):
        text = smk.read_text()
        assert not re.search(r"^\s+run:", text, re.MULTILINE), f"{smk.name} has an inline run: block"
        for rule in re.split(r"^rule ", text, flags=re.MULTILINE)[1:]:
            name = rule.split(":", 1)[0]
            assert "\n    log:" in rule, f"rule {name} in {smk.name} has no log"
            assert '\n    conda:\n        "envs/genomamba.yaml"' in rule, f"rule {name}: no conda env"
            # genomamba itself, or through the launcher that starts it under torchrun on several GPUs
            launched = '"{params.launcher} ' in rule and "launcher=GENOMAMBA_DATA_PARALLEL" in rule
            assert "\n    shell:" in rule and ('"genomamba ' in rule or launched), (
                f"rule {name} must shell out to genomamba"
            )


# The demo config in the fast suite; the others (same rules, other stages on) with the slow tests.
@pytest.mark.parametrize("config", [
    name if name == "demo.yaml" else pytest.param(name, marks=pytest.mark.slow)
    for name in sorted(p.name for p in (REPO_ROOT / "config").glob("*.yaml"))
])
def test_lint_reports_nothing(workflow, config):
    result = _snakemake(workflow, "--lint", "--configfile", f"config/{config}")
    text = result.stdout + result.stderr
    assert result.returncode == 0 and "Lints for" not in text, text
    assert "Congratulations, your workflow is in a good condition!" in text


def test_conda_environment_installs_this_genomamba_without_forcing_a_torch_build():
    import yaml

    from genomamba import __version__

    env = yaml.safe_load((REPO_ROOT / "pipelines" / "envs" / "genomamba.yaml").read_text())
    [pip] = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert pip == [f"genomamba[gpu]=={__version__}"]  # the version whose workflow this is
    text = str(env).lower()
    assert "torch" not in text and "cpu" not in text  # torch comes with genomamba, GPU build where it can


def test_dry_run_of_demo_config(workflow):
    result = _snakemake(workflow, "-n", "--cores", "2", "--configfile", "config/demo.yaml")
    assert result.returncode == 0, result.stderr
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.MULTILINE))
    # lambda (1 file) + yeast (FASTA + GFF3 + VCF); validate and tokenize once per genome
    assert counts == {
        "fetch_file": "4",
        "validate_genome": "2",
        "tokenize_genome": "2",
        "pretrain": "1",
        "make_task": "1",
        "finetune": "1",
        "evaluate": "1",
        "embed": "2",
        "predict": "1",
        "score_variants": "1",
        "all": "1",
        "total": "17",
    }


def test_example_download_config_builds_its_dag_offline(workflow):
    result = _snakemake(workflow, "-n", "--cores", "1", "--configfile", "config/hg38_chr21.yaml")
    assert result.returncode == 0, result.stderr
    assert "results/hg38_chr21/genomes/hg38_chr21/chr21.fa.gz" in result.stdout


def test_pretrain_corpus_config_splits_training_and_heldout_shards(workflow):
    result = _snakemake(
        workflow, "-n", "--cores", "1", "--printshellcmds", "--configfile", "config/pretrain_corpus.yaml"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # training shards leave the holdout out, held-out shards read only it (names with | are quoted)
    assert "-o results/pretrain_corpus/tokens/human_chrX_70mb" in out
    assert "--exclude-region X:62,000,001-69,999,930" in out
    assert "--region 'gi|9626243|ref|NC_001416.1|:46,001-48,502'" in out
    assert "--region CP003223.1 --region CP003224.1" in out
    # the yeast genome is validation only: held-out shards, never a pretraining input
    assert "results/pretrain_corpus/heldout_tokens/yeast_chrI_chrII" in out
    assert "tokens/yeast_chrI_chrII " not in out.replace("heldout_tokens/yeast", "")
    [pretrain] = [line for line in out.splitlines() if "genomamba pretrain" in line]
    assert pretrain.count("--data ") == 12  # every genome but the validation-only yeast
    assert "--preset small-1k" in pretrain and "--seq-len 1024" in pretrain
    # validated on every genome's held-out shards, the yeast genome's included
    assert pretrain.count("--val-data results/pretrain_corpus/heldout_tokens/") == 13
    assert "--val-data results/pretrain_corpus/heldout_tokens/yeast_chrI_chrII " in pretrain


def test_validation_only_genome_needs_a_holdout(workflow):
    (workflow / "config" / "vo.yaml").write_text(
        "run: vo\nmanifest: data_manifests/demo.yaml\ngenomes: [lambda]\nstages: [tokenize]\n"
        "tokenize:\n  validation_only: [lambda]\n"
    )
    result = _snakemake(workflow, "-n", "--cores", "1", "--configfile", "config/vo.yaml")
    assert result.returncode != 0
    message = "tokenize.validation_only: 'lambda' is not a run genome with a manifest holdout"
    assert message in result.stdout + result.stderr


def test_benchmark_stage_runs_the_cli_with_the_configured_methods(workflow, tmp_path):
    suite = tmp_path / "suite" / "task_a"
    suite.mkdir(parents=True)
    for name in ("train.csv", "test.csv"):
        (suite / name).write_text("sequence,label\nACGTAC,a\nGGCCTA,b\n")
    (workflow / "config" / "bench.yaml").write_text(
        "run: bench\nmanifest: data_manifests/demo.yaml\ngenomes: [lambda]\nstages: [benchmark]\n"
        f"benchmark:\n  suites: [{suite.parent}]\n  methods: [kmer-lr, 'finetune:tiny,pooling=attention']\n"
        "  seeds: '1,2'\n  published: data_manifests/tasks/gue_published.yaml\n"
    )
    result = _snakemake(
        workflow, "-n", "--cores", "1", "--printshellcmds", "--configfile", "config/bench.yaml"
    )
    assert result.returncode == 0, result.stderr
    assert (
        f"genomamba benchmark {suite.parent} --out results/bench/benchmark --method kmer-lr"
        " --method finetune:tiny,pooling=attention" in result.stdout
    )
    assert "--published data_manifests/tasks/gue_published.yaml --seeds 1,2" in result.stdout


def test_rules_declare_threads_and_cluster_resources_from_the_config(workflow):
    demo = (workflow / "config" / "demo.yaml").read_text()
    (workflow / "config" / "gpu.yaml").write_text(
        demo.replace("run: demo", "run: gpu")
        + "compute: {threads: 8, gpus: 1, mem_mb: 32000, runtime: 600}\n"
    )
    result = _snakemake(workflow, "-n", "--cores", "8", "--printshellcmds", "--configfile", "config/gpu.yaml")
    assert result.returncode == 0, result.stderr
    blocks = re.finditer(r"^rule (\w+):\n(.*?)(?=^\[|\Z)", result.stdout, re.M | re.S)
    jobs = {m.group(1): m.group(2) for m in blocks}
    for rule in ("pretrain", "finetune", "evaluate", "embed", "predict", "score_variants"):
        assert "threads: 8" in jobs[rule] and "gpu=1" in jobs[rule] and "runtime=600" in jobs[rule], rule
        assert "mem_mb=32000" in jobs[rule], rule
        assert re.search(r"^Shell command: genomamba .* --threads 8 ", jobs[rule], re.M), rule  # for torch
    for rule in ("fetch_file", "validate_genome", "tokenize_genome", "make_task"):
        # one thread (snakemake prints no threads line then), no GPU
        assert "threads:" not in jobs[rule] and "gpu=" not in jobs[rule] and "mem_mb=4000" in jobs[rule], rule


def test_default_config_is_the_demo(workflow):
    result = _snakemake(workflow, "-n", "--cores", "1", "--printshellcmds")
    assert result.returncode == 0, result.stderr
    assert "results/demo/tokens/yeast_chrI_chrII --window 16384" in result.stdout


def test_user_config_does_not_inherit_demo_values(workflow):
    (workflow / "config" / "mine.yaml").write_text(
        "run: mine\nmanifest: data_manifests/demo.yaml\ngenomes: [lambda_plain]\nstages: [tokenize]\n"
    )
    result = _snakemake(
        workflow, "-n", "--cores", "1", "--printshellcmds", "--configfile", "config/mine.yaml"
    )
    assert result.returncode == 0, result.stderr
    # schema defaults, not the demo's 16384
    expected = "--window 1048576 --stride 1048576 --last-window keep --max-n-fraction 1.0"
    assert f"-o results/mine/tokens/lambda_plain {expected}" in result.stdout


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            "tokenize: {window: 1024, windw: 3}\n",
            "Additional properties are not allowed ('windw' was unexpected)",
        ),
        # two more schema violations, the same check as the one above: with the slow tests
        pytest.param("colour: blue\n", "Additional properties are not allowed ('colour' was unexpected)",
                     marks=pytest.mark.slow),
        pytest.param("stages: [train]\n", "'train' is not one of", marks=pytest.mark.slow),
        (
            "genomes: [lambda]\nstages: [embed]\nembed: {genomes: [mouse]}\n",
            "mouse: not among the run's genomes (lambda)",
        ),
        ("stages: [finetune]\nfinetune: {genome: mouse}\n", "finetune.genome must be one of the run's"),
        ("stages: [finetune]\nfinetune: {genome: lambda}\n", "has no annotation (GFF3) file"),
        ("genomes: [mouse]\n", "no genome named 'mouse'"),
        (
            "genomes: [lambda]\nstages: [variants]\nvariants: {genomes: [lambda]}\n",
            "lambda have no VCF (role: variants)",
        ),
    ],
)
def test_bad_config_is_rejected(workflow, config, message):
    base = "run: bad\nmanifest: data_manifests/demo.yaml\n"
    if "genomes:" not in config:
        base += "genomes: [lambda]\n"
    if "stages:" not in config:
        base += "stages: [fetch]\n"
    (workflow / "config" / "bad.yaml").write_text(base + config)
    result = _snakemake(workflow, "-n", "--cores", "1", "--configfile", "config/bad.yaml")
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


def _cli_commands_exist(*names: str) -> bool:
    import importlib.util

    from genomamba.cli import COMMANDS

    modules = [COMMANDS.get(name, ":").split(":")[0] for name in names]
    return all(m and importlib.util.find_spec(m) is not None for m in modules)


@pytest.mark.slow  # the whole demo pipeline (about two minutes on 2 cores), shared by tests/pipelines
@pytest.mark.skipif(
    not _cli_commands_exist("validate", "tokenize"), reason="genomamba validate/tokenize not available yet"
)
def test_demo_run_produces_token_shards(demo_run):
    workflow = demo_run
    run = workflow / "results" / "demo"

    demo = load_manifest(workflow / "data_manifests" / "demo.yaml")
    for genome in ("lambda", "yeast_chrI_chrII"):
        report = pd.read_csv(run / "validate" / f"{genome}.tsv", sep="\t")
        lengths = dict(zip(report["record"], report["length"], strict=True))
        assert len(lengths) == {"lambda": 1, "yeast_chrI_chrII": 2}[genome]

        shards = run / "tokens" / genome
        manifest = json.loads((shards / "manifest.json").read_text())
        # provenance chain: the shards were made from exactly the bytes the data manifest names
        [fasta] = demo.genome(genome).fasta_files()
        assert [i["sha256"] for i in manifest["inputs"]] == [fasta.sha256]
        assert manifest["parameters"]["window"] == 16384

        index = pd.read_parquet(shards / "index.parquet")
        plus = index[index["strand"] == "+"] if "strand" in index else index
        # windows tile every record: they end at the record lengths validate reported
        assert plus.groupby("record", observed=True)["end"].max().to_dict() == lengths
        assert (plus["end"] - plus["start"]).max() == 16384
        arrays = sorted(shards.glob("tokens-*.npy"))
        assert arrays, f"no token shards for {genome}"
        tokens = np.load(arrays[0], mmap_mode="r")
        assert tokens.dtype == np.uint8 and tokens.size >= sum(lengths.values())

    # finetune stage: the demo task, a fine-tuned model that beats chance on the held-out chrI,
    # and `genomamba evaluate` reproducing its test metrics
    finetuned = json.loads((run / "finetune" / "run" / "metrics.json").read_text())
    evaluated = json.loads((run / "finetune" / "evaluate" / "metrics.json").read_text())
    assert finetuned["labels"] == ["intergenic", "coding"] and finetuned["n"]["test"] == 576
    assert finetuned["test"]["auroc"] > 0.7, finetuned["test"]
    assert evaluated["metrics"]["confusion_matrix"] == finetuned["test"]["confusion_matrix"]
    assert (run / "finetune" / "run" / "model" / "model.safetensors").is_file()

    # embed and predict stages: a row per window of every record, in the columns the CLIs document
    for genome in ("lambda", "yeast_chrI_chrII"):
        embedded = pd.read_parquet(run / "embed" / f"{genome}.parquet")
        report = pd.read_csv(run / "validate" / f"{genome}.tsv", sep="\t")
        expected = sum(-(-n // 1024) for n in report["length"])  # windows of 1024, the last one kept
        assert len(embedded) == expected and embedded.filter(regex="^emb_").notna().all().all()
    predicted = pd.read_csv(run / "predict" / "yeast_chrI_chrII.tsv", sep="\t")
    assert set(predicted["record"]) == {"chrI", "chrII"}
    assert (predicted["end"] - predicted["start"] == 200).all()
    assert predicted["p_coding"].between(0, 1).all()
    assert set(predicted["predicted"]) <= {"coding", "intergenic"}
    track_lines = (run / "predict" / "yeast_chrI_chrII.bedgraph").read_text().splitlines()
    assert track_lines[0].startswith('track type=bedGraph name="p_coding"')
    track = pd.read_csv(run / "predict" / "yeast_chrI_chrII.bedgraph", sep="\t", skiprows=1, header=None,
                        names=["record", "start", "end", "p"])
    assert track[["record", "start", "end"]].equals(predicted[["record", "start", "end"]])
    assert (track["p"] - predicted["p_coding"]).abs().max() < 1e-6

    # variants stage: every SNV of the demo VCF scored by the pretrained model, in VCF order
    scores = pd.read_csv(run / "variants" / "yeast_chrI_chrII" / "yeast_chrI_snvs.tsv", sep="\t")
    assert len(scores) == 240 and scores["pos"].is_monotonic_increasing
    assert set(scores["id"].str.split("_").str[0]) == {"cds", "intergenic"}
    assert (scores[["log_p_ref", "log_p_alt"]] < 0).all().all()
    assert ((scores["log_p_alt"] - scores["log_p_ref"] - scores["llr"]).abs() < 1e-5).all()

    again = _snakemake(workflow, "--cores", "2", "--configfile", "config/demo.yaml")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_corrupted_input_stops_the_run_at_fetch(workflow):
    fasta = workflow / "data" / "demo" / "lambda_virus.fa"
    fasta.write_bytes(fasta.read_bytes().replace(b"GGGCGGCGAC", b"GGGCGGCGAA", 1))
    # (stages up to tokenize: the demo's finetune stage needs the yeast genome and its GFF3)
    result = _snakemake(workflow, "--cores", "1", "--config", "genomes=[lambda_plain]", "stages=[tokenize]")
    assert result.returncode != 0
    log = workflow / "results" / "demo" / "logs" / "fetch" / "lambda_plain" / "lambda_virus.fa.log"
    assert "checksum mismatch for lambda_plain/lambda_virus.fa" in log.read_text()
    assert not (workflow / "results" / "demo" / "genomes" / "lambda_plain").exists()
    assert not (workflow / "results" / "demo" / "tokens").exists()
