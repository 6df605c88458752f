"""`genomamba make-task`, `finetune` and `evaluate` on the command line: help, errors, a short run."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from genomamba.cli import main

GENOME = ">chr1\nACGTACGTACGGGGCCCCAA\n"


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize(
    ("command", "phrases"),
    [
        ("finetune", ("CSV (.csv)", "BED (.bed) + --genome", "LABEL=FILE", "--seeds", "Exit codes", "65")),
        ("evaluate", ("--data takes the formats", "label map", "metrics.json", "Exit codes", "65")),
        ("make-task", ("coding", "intergenic", "group", "Exit codes")),
    ],
)
def test_help_documents_formats_and_exit_codes(command, phrases):
    result = _run(command, "--help")
    assert result.exit_code == 0
    for phrase in phrases:
        assert phrase in result.output, phrase


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = "sequence,label\nACGTAC,a\nGGCCTA,b\nACGGTT,a\nTTTACG,b\n"
BAD_INPUTS = [
    (
        "missing-column",
        "train.csv",
        "sequence,class\nACGT,a\n",
        [],
        "train.csv: line 1: missing column(s) 'label'",
    ),
    ("empty", "train.csv", "", [], "train.csv: empty file"),
    ("bad-base", "train.csv", "sequence,label\nACGT,a\nACJT,b\n", [], "train.csv: line 3, column 'sequence'"),
    (
        "unknown-test-label",
        "train.csv",
        GOOD,
        ["test"],
        "test.csv: line 2: label 'c' is not in the training data",
    ),
    (
        "bed-past-end",
        "train.bed",
        "chr1\t0\t8\ta\nchr1\t10\t30\tb\n",
        ["genome"],
        "train.bed: line 2: interval",
    ),
]


@pytest.mark.parametrize(
    ("case", "name", "text", "extra", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS]
)
def test_bad_label_files_exit_65_without_output(tmp_path, case, name, text, extra, message):
    train = _write(tmp_path, name, text)
    args = ["finetune", "--train", train, "--preset", "tiny", "--out", tmp_path / "out"]
    if "test" in extra:
        args += ["--test", _write(tmp_path, "test.csv", "sequence,label\nACGT,c\n")]
    if "genome" in extra:
        args += ["--genome", _write(tmp_path, "g.fa", GENOME)]
    result = _run(*args)
    assert result.exit_code == 65, result.output
    assert f"error: {tmp_path}" in result.output and message in result.output
    assert not (tmp_path / "out").exists()


def test_usage_errors_exit_2(tmp_path):
    train = _write(tmp_path, "t.csv", GOOD)
    model = tmp_path / "m"
    model.mkdir()
    both = _run("finetune", "--train", train, "--preset", "tiny", "--model", model, "--out", tmp_path / "o")
    assert both.exit_code == 2 and "exactly one of model" in both.output
    neither = _run("finetune", "--train", train, "--out", tmp_path / "o")
    assert neither.exit_code == 2
    bed = _write(tmp_path, "t.bed", "chr1\t0\t4\ta\n")
    no_genome = _run("finetune", "--train", bed, "--preset", "tiny", "--out", tmp_path / "o")
    assert no_genome.exit_code == 2 and "needs --genome" in no_genome.output
    missing = _run(
        "finetune", "--class", f"a={tmp_path / 'nope.fa'}", "--preset", "tiny", "--out", tmp_path / "o"
    )
    assert missing.exit_code == 2 and "no such file" in missing.output
    metric = _run("finetune", "--train", train, "--preset", "tiny", "--out", tmp_path / "o", "--metric", "r2")
    assert metric.exit_code == 2 and "not defined for binary" in metric.output
    seeds = _run("finetune", "--train", train, "--preset", "tiny", "--out", tmp_path / "o", "--seeds", "1,1")
    assert seeds.exit_code == 2 and "distinct" in seeds.output
    assert not (tmp_path / "o").exists()


def test_make_task_finetune_seeds_and_evaluate(tmp_path, demo_data):
    task = tmp_path / "task.csv"
    made = _run(
        "make-task", "coding", "--fasta", demo_data / "yeast_chrI_chrII.fa",
        "--gff3", demo_data / "yeast_chrI_chrII.gff3", "--window", 60, "--per-class", 24,
        "--test-chrom", "chrI", "-o", task,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "test coding 24, test intergenic 24, train coding 24, train intergenic 24" in made.output
    out = tmp_path / "ft"
    common = ["--train", task, "--preset", "tiny", "--out", out, "--max-steps", 2, "--batch-size", 8]
    result = _run("finetune", *common, "--seeds", "1,2", "--positive", "coding", "--val-fraction", 0.3)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [1, 2] and set(summary["splits"]) == {"test", "val"}
    assert "| accuracy |" in (out / "summary.md").read_text()
    seed1 = json.loads((out / "seed-1" / "metrics.json").read_text())

    evaluated = _run("evaluate", out / "seed-1" / "model", "--data", task, "--split", "test")
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    assert report["metrics"]["confusion_matrix"] == seed1["test"]["confusion_matrix"]
    assert report["metrics"]["auroc"] == pytest.approx(seed1["test"]["auroc"], abs=1e-6)
    written = _run("evaluate", out / "seed-1" / "model", "--data", task, "--out", tmp_path / "ev")
    assert written.exit_code == 0, written.output
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["metrics"]["n"] == 96  # all rows
    assert (tmp_path / "ev" / "roc.png").is_file() and (tmp_path / "ev" / "confusion_matrix.png").is_file()

    unknown = _write(tmp_path, "u.csv", "sequence,label\nACGT,coding\nACGT,exon\n")
    bad = _run("evaluate", out / "seed-1" / "model", "--data", unknown, "--out", tmp_path / "ev2")
    assert (
        bad.exit_code == 65
        and "u.csv: line 3: label 'exon' is not in the label map of the model" in bad.output
    )
    assert not (tmp_path / "ev2").exists()
    again = _run("finetune", *common)
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_fasta_classes_on_the_command_line(tmp_path):
    pos = _write(tmp_path, "pos.fa", "".join(f">p{i}\nGGCCGGCCGCGC{'GC' * i}\n" for i in range(6)))
    neg = _write(tmp_path, "neg.fa", "".join(f">n{i}\nATATTATAATAT{'AT' * i}\n" for i in range(6)))
    out = tmp_path / "out"
    result = _run(
        "finetune", "--class", f"gc={pos}", "--class", f"at={neg}", "--preset", "tiny", "--out", out,
        "--max-steps", 2, "--batch-size", 4, "--val-fraction", 0.3, "--positive", "gc",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "metrics.json").read_text())
    assert report["labels"] == ["at", "gc"] and report["n"]["train"] + report["n"]["val"] == 12
    evaluated = _run("evaluate", out / "model", "--data", f"gc={pos}", "--data", f"at={neg}")
    assert evaluated.exit_code == 0 and json.loads(evaluated.stdout)["metrics"]["n"] == 12


def test_lora_options(tmp_path):
    import torch

    from genomamba.errors import UnavailableError
    from genomamba.model import build_model
    from genomamba.model.lora import import_peft
    from genomamba.model_directory import save_pretrained

    more = ("AACGTT,a", "GGTTAC,b", "ACGACG,a", "TTGGCC,b", "AACCGT,a", "GTGTCA,b")
    train = _write(tmp_path, "t.csv", GOOD + "\n".join(more) + "\n")  # 10 rows
    torch.manual_seed(0)
    model = save_pretrained(build_model("tiny"), tmp_path / "mlm")
    common = ["finetune", "--train", train, "--model", model, "--out", tmp_path / "o"]
    both = _run(*common, "--lora", 4, "--freeze-backbone")
    assert both.exit_code == 2 and "freeze_backbone and lora exclude each other" in both.output
    alone = _run(*common, "--lora-alpha", 8)
    assert alone.exit_code == 2 and "give --lora RANK" in alone.output
    assert _run(*common, "--lora", 0).exit_code == 2
    assert not (tmp_path / "o").exists()
    try:
        import_peft()
    except UnavailableError as exc:
        pytest.skip(str(exc))
    out = tmp_path / "ft"
    result = _run("finetune", "--train", train, "--model", model, "--out", out, "--max-steps", 1,
                  "--val-fraction", 0.3, "--lora", 2, "--lora-alpha", 3, "--lora-dropout", 0.1)
    assert result.exit_code == 0, result.output
    assert "trainable parameters:" in result.output and "LoRA rank 2 (alpha 3, dropout 0.1)" in result.output
    saved = json.loads((out / "finetune_config.json").read_text())
    assert (saved["lora"], saved["lora_alpha"], saved["lora_dropout"]) == (2, 3.0, 0.1)
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    evaluated = _run("evaluate", out / "model", "--data", train)  # the merged model: an ordinary one
    assert evaluated.exit_code == 0 and json.loads(evaluated.stdout)["metrics"]["n"] == 10
