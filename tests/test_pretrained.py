"""genomamba.pretrained: shipped models by name, their sha256 pins, and every place that takes a model.

A test registry (a temporary folder with models.json and a tiny bf16 model, pinned as
scripts/ship_model.py pins them) stands in for the package's own; ``REGISTRY`` is pointed at it.
"""

from __future__ import annotations

import json
import re
import stat
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "model"))
from model_cases import make_model, random_bases  # noqa: E402

from genomamba import pretrained  # noqa: E402
from genomamba.cli import main  # noqa: E402
from genomamba.errors import EXIT_DATA, EXIT_USAGE  # noqa: E402
from genomamba.model_directory import ModelDirectoryError, from_pretrained, save_pretrained  # noqa: E402
from genomamba.pretrained import RegisteredModel, ShippedModelError  # noqa: E402

NAME, PLANNED = "genomamba-test-1k", "genomamba-planned-131k"


def _registry(folder: Path, *, seed: int = 0) -> Path:
    """A registry with NAME shipped (a tiny bf16 model, its files pinned) and PLANNED not shipped."""
    folder.mkdir(parents=True)
    shipped = save_pretrained(make_model(seed=seed, dtype=torch.float32), folder / NAME,
                              weights_dtype=torch.bfloat16)
    files = {p.name: pretrained.file_sha256(p) for p in shipped.iterdir()}
    models = {NAME: RegisteredModel(NAME, "a tiny test model", "tiny", files, {"tokens_seen": 384}),
              PLANNED: RegisteredModel(PLANNED, "a long model to come", "base-131k")}
    (folder / pretrained.MANIFEST_FILE).write_text(pretrained.manifest_text(models))
    return folder


@pytest.fixture
def registry(tmp_path, monkeypatch) -> Path:
    """The test registry as the package's, and a working directory without a folder of either name."""
    folder = _registry(tmp_path / "registry")
    monkeypatch.setattr(pretrained, "REGISTRY", folder)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return folder


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _logits(model):
    ids = random_bases(2, 40, seed=3)
    return model(ids).logits


def test_the_committed_registry_is_valid_and_every_folder_in_it_is_pinned():
    models = pretrained.read_manifest()  # the package's own models.json
    assert {"genomamba-small-1k", "genomamba-base-131k"} <= set(models)
    assert all(m.description for m in models.values())
    status = pretrained.registry_status()
    assert all(row["state"] != "damaged" for row in status), status
    folders = {p.name for p in pretrained.REGISTRY.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders <= {name for name, m in models.items() if m.shipped}, "a model folder without pins"


def test_a_registered_name_resolves_to_its_verified_folder(registry):
    assert pretrained.resolve(NAME) == registry / NAME
    assert pretrained.is_registered(NAME) and pretrained.is_registered(PLANNED)
    assert not pretrained.is_registered("genomamba-other")
    model = from_pretrained(NAME)  # loaded in float32 from the bf16 file
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert torch.equal(_logits(model), _logits(from_pretrained(registry / NAME)))


def test_an_existing_path_wins_over_a_registered_name(registry):
    local = save_pretrained(make_model(seed=7, dtype=torch.float32), Path(NAME))  # ./genomamba-test-1k
    assert pretrained.resolve(NAME) == Path(NAME)
    assert pretrained.shipped_directory(NAME) == registry / NAME  # the shipped one, whatever the cwd holds
    assert torch.equal(_logits(from_pretrained(NAME)), _logits(from_pretrained(local.resolve())))
    assert not torch.equal(_logits(from_pretrained(NAME)), _logits(from_pretrained(registry / NAME)))


def test_an_unknown_name_is_left_to_the_usual_missing_directory_errors(registry, tmp_path):
    assert pretrained.resolve("genomamba-other") == Path("genomamba-other")
    with pytest.raises(ShippedModelError, match=f"genomamba-other is not a registered genomamba model; "
                                                f"registered: {NAME}, {PLANNED}"):
        pretrained.shipped_directory("genomamba-other")
    with pytest.raises(ModelDirectoryError, match="genomamba-other is not a genomamba model directory"):
        from_pretrained("genomamba-other")
    result = _run("embed", "genomamba-other", tmp_path / "x.fa", "-o", tmp_path / "e.parquet")
    assert result.exit_code == EXIT_USAGE and "Directory 'genomamba-other' does not exist" in result.output


def test_a_registered_model_that_is_not_shipped_is_a_clear_error(registry, tmp_path, demo_data):
    with pytest.raises(ModelDirectoryError) as raised:
        from_pretrained(PLANNED)
    message = str(raised.value)
    for text in (f"{PLANNED} is a registered genomamba model (a long model to come)",
                 "does not ship its weights", f"Models shipped in this build: {NAME}", "docs/pretraining.md",
                 "'Shipped models'"):
        assert text in message, text
    assert raised.value.exit_code == EXIT_DATA
    out = tmp_path / "e.parquet"
    result = _run("embed", PLANNED, demo_data / "lambda_virus.fa", "-o", out, "--device", "cpu")
    assert result.exit_code == EXIT_DATA and "does not ship its weights" in result.output and not out.exists()
    # nothing shipped at all
    (registry / pretrained.MANIFEST_FILE).write_text(pretrained.manifest_text(
        {PLANNED: pretrained.read_manifest()[PLANNED]}))
    with pytest.raises(ShippedModelError, match="Models shipped in this build: none yet"):
        pretrained.resolve(PLANNED)


@pytest.mark.parametrize("file", ["model.safetensors", "config.json", "README.md"])
def test_a_changed_shipped_file_is_refused_naming_it_and_its_pin(registry, tmp_path, demo_data, file):
    path = registry / NAME / file
    pin = pretrained.read_manifest()[NAME].files[file]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    path.write_bytes(bytes(data))
    expected = f"{re.escape(str(path))}: sha256 [0-9a-f]{{64}} differs from its pin {pin}"
    with pytest.raises(ModelDirectoryError, match=expected):
        from_pretrained(NAME)
    out = tmp_path / "e.parquet"
    result = _run("embed", NAME, demo_data / "lambda_virus.fa", "-o", out, "--device", "cpu")
    assert result.exit_code == EXIT_DATA and "was changed or damaged; reinstall genomamba" in result.output
    path.unlink()
    incomplete = f"the shipped model {NAME} is incomplete: {re.escape(str(path))} is missing"
    with pytest.raises(ShippedModelError, match=incomplete):
        pretrained.resolve(NAME)


@pytest.mark.parametrize(("manifest", "message"), [
    ("{not json", "cannot read the model registry"),
    (json.dumps({"format": "other", "format_version": 1, "models": {}}), "is not a genomamba-model-registry"),
    (json.dumps({"format": "genomamba-model-registry", "format_version": 1,
                 "models": {"../up": {"files": {}}}}), "entry '../up' needs a plain name"),
    (json.dumps({"format": "genomamba-model-registry", "format_version": 1,
                 "models": {"m": {"files": {"config.json": "abc"}}}}), "lower-case hex sha256, got 'abc'"),
])
def test_a_damaged_manifest_is_an_error_naming_it(registry, tmp_path, demo_data, manifest, message):
    (registry / pretrained.MANIFEST_FILE).write_text(manifest)
    with pytest.raises(ShippedModelError, match=message):
        pretrained.read_manifest()
    result = _run("embed", "some-name", demo_data / "lambda_virus.fa", "-o", tmp_path / "e.parquet")
    assert result.exit_code == EXIT_DATA and message in result.output
    assert "models: unavailable (" in _run("doctor").output  # doctor describes, and still exits 0


def test_genomamba_embed_by_name_reads_the_read_only_shipped_folder(registry, tmp_path, demo_data):
    """`genomamba embed NAME`: the same table as with the folder's path; the folder is never written."""
    folder = registry / NAME
    for path in [*folder.iterdir(), folder]:
        path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH | (stat.S_IXUSR if path.is_dir() else 0))
    fasta = demo_data / "lambda_virus.fa"
    try:
        options = ("--window", 4096, "--device", "cpu")
        by_name = _run("embed", NAME, fasta, "-o", tmp_path / "name.parquet", *options)
        by_path = _run("embed", folder, fasta, "-o", tmp_path / "path.parquet", *options)
        assert by_name.exit_code == 0 and by_path.exit_code == 0, by_name.output + by_path.output
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "name.parquet"),
                                      pd.read_parquet(tmp_path / "path.parquet"))
        assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
        assert pretrained.resolve(NAME) == folder  # pins still match
    finally:
        for path in [folder, *folder.iterdir()]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_every_command_function_and_the_notebook_api_take_a_name(registry, tmp_path, demo_data):
    import genomamba
    from genomamba import api

    model = genomamba.load(NAME, device="cpu")
    assert model.model_dir == str(registry / NAME)
    assert model.embed(["ACGTACGTTT"]).shape == (1, model.config.d_model)
    result = api.embed(NAME, [demo_data / "lambda_virus.fa"], tmp_path / "e.tsv", window=8192, device="cpu",
                       log=lambda m: None)
    assert result["rows"] == 6
    with pytest.raises(ModelDirectoryError, match="does not ship its weights"):
        api.predict(PLANNED, [demo_data / "lambda_virus.fa"], tmp_path / "p.tsv", device="cpu")
    with pytest.raises(ModelDirectoryError, match="does not ship its weights"):
        api.evaluate(PLANNED, ["x.csv"])
    with pytest.raises(ModelDirectoryError, match="does not ship its weights"):
        api.benchmark([tmp_path], tmp_path / "bench", model=PLANNED, methods=["probe"])


def test_finetune_from_a_shipped_name_leaves_it_untouched(registry, tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("sequence,label\n" + "".join(f"{s},{lab}\n" for s, lab in [
        ("ACGTACGTAC", "a"), ("GGCCTAGGCC", "b"), ("ACGGTTACGG", "a"), ("TTTACGTTTA", "b")] * 3))
    before = {p.name: p.stat().st_mtime_ns for p in (registry / NAME).iterdir()}
    result = _run("finetune", "--train", train, "--model", NAME, "--out", tmp_path / "ft", "--epochs", 1,
                  "--device", "cpu", "--val-fraction", 0.25)
    assert result.exit_code == 0, result.output
    assert {p.name: p.stat().st_mtime_ns for p in (registry / NAME).iterdir()} == before
    assert (tmp_path / "ft" / "model" / "model.safetensors").is_file()


def test_doctor_lists_every_registered_model_and_its_state(registry):
    result = _run("doctor")
    assert result.exit_code == 0
    assert f"model {NAME}: shipped, sha256 pins match ({registry / NAME})" in result.output
    assert f"model {PLANNED}: not shipped in this build" in result.output
    info = json.loads(_run("doctor", "--format", "json").output)
    assert [(m["name"], m["state"]) for m in info["models"]] == [(NAME, "shipped"), (PLANNED, "not shipped")]
    (registry / NAME / "README.md").write_text("changed")
    result = _run("doctor")
    assert result.exit_code == 0 and f"model {NAME}: DAMAGED: " in result.output
