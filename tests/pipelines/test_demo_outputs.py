"""What a finished demo run offers its reader: the HTML report of its plots and tables, and the
summary `make demo` prints. Both read the session's one demo run (the `demo_run` fixture)."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys

import pytest

from tests.pipelines.workflow_runs import REPO_ROOT, run_snakemake

pytest.importorskip("snakemake")

RUN = "results/demo"
# output -> a phrase of its caption (pipelines/report/*.rst, rendered with the run's config)
REPORTED = {
    f"{RUN}/pretrain/metrics.png": 'pretraining (preset <tt class="docutils literal">tiny</tt>)',
    f"{RUN}/finetune/evaluate/roc.png": "ROC curve of the fine-tuned coding-versus-intergenic classifier",
    f"{RUN}/finetune/evaluate/confusion_matrix.png": "on the held-out test chromosomes\n(chrI)",
    f"{RUN}/finetune/evaluate/metrics.json": "accuracy, MCC, F1",
    f"{RUN}/variants/yeast_chrI_chrII/yeast_chrI_snvs.tsv": "SNVs in <strong>yeast_chrI_snvs</strong>",
    f"{RUN}/validate/lambda.tsv": "genomamba validate</tt> of genome <strong>lambda</strong>",
}


def _report_entries(html: str) -> dict[str, dict]:
    """The report's results, by output path: the JSON object the HTML report embeds for each."""
    entries = {}
    decoder = json.JSONDecoder()
    for path in REPORTED:
        start = html.find(json.dumps(path) + ": {")
        assert start >= 0, f"{path} is not in the report"
        entries[path], _ = decoder.raw_decode(html, start + len(json.dumps(path)) + 2)
    return entries


@pytest.mark.slow
def test_report_holds_loss_curves_roc_and_results_with_captions(demo_run):
    result = run_snakemake(demo_run, "--configfile", "config/demo.yaml", "--report", "report.html")
    assert result.returncode == 0, result.stderr[-4000:]
    entries = _report_entries((demo_run / "report.html").read_text())
    for path, caption in REPORTED.items():
        entry = entries[path]
        assert caption in entry["caption"], (path, entry["caption"])
        embedded = base64.b64decode(entry["data_uri"].split("base64,", 1)[1])
        assert embedded == (demo_run / path).read_bytes(), path  # the file itself, not a link
    categories = {json.dumps(c) for c in ("Pretraining", "Fine-tuning", "Variant scores", "Genomes")}
    assert all(c in (demo_run / "report.html").read_text() for c in categories)


@pytest.mark.slow
def test_demo_summary_lists_the_key_outputs_with_sizes(demo_run):
    result = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "demo_summary.py"), RUN],
                            cwd=demo_run, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Done. Key outputs under {RUN}/:" and len(lines) <= 15  # short, not a log
    for shown in ("pretrain/model/", "finetune/run/model/", "embed/lambda.parquet",
                  "embed/yeast_chrI_chrII.parquet", "predict/yeast_chrI_chrII.tsv",
                  "predict/yeast_chrI_chrII.bedgraph", "variants/yeast_chrI_chrII/yeast_chrI_snvs.tsv"):
        [line] = [line for line in lines if f" {shown} " in line]
        assert re.search(r"\d+(\.\d)? (B|kB|MB|GB)$", line), line
    assert re.search(r"held-out test: AUROC 0\.\d{3}, MCC -?\d\.\d{3}", result.stdout)


def test_demo_summary_names_what_is_missing(tmp_path):
    (tmp_path / "pretrain" / "model").mkdir(parents=True)
    result = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "demo_summary.py"), str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == ""
    assert "missing from" in result.stderr and "fine-tuned model" in result.stderr
    assert "pretrained model" not in result.stderr
