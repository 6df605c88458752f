"""scripts/ship_model.py: a real (tiny, 3-step) pretraining run on the lambda genome shipped into a
temporary registry, then loaded by name: pins, the model card's fields, bf16 within rounding of the
trained model, `genomamba embed NAME` on the command line."""

from __future__ import annotations

import json
import lzma
import sys
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import ship_model  # noqa: E402

from genomamba import api, pretrained  # noqa: E402
from genomamba.alphabet import ACGT_IDS  # noqa: E402
from genomamba.cli import main  # noqa: E402
from genomamba.model_directory import from_pretrained, read_config  # noqa: E402

NAME = "genomamba-small-1k"
CORPUS = REPO / "data_manifests" / "pretrain_corpus.yaml"
RESULTS = ("Test mcc x 100, mean ± standard deviation over 3 seed(s)\n\n"
           "| task | probe |\n|---|---:|\n| t | 1.0 ± 0.1 |\n")  # as genomamba benchmark writes results.md


@pytest.fixture(scope="module")
def run(lambda_shards, tmp_path_factory) -> Path:
    """`genomamba pretrain`'s run directory: tiny preset, 3 steps, validation on lambda at the end."""
    out = tmp_path_factory.mktemp("pretrain") / "run"
    api.pretrain([lambda_shards], out, preset="tiny", seq_len=64, batch_size=2, max_steps=3, device="cpu",
                 val_data=[lambda_shards], val_every=3, val_tokens=256, val_seq_lens=[64], log=lambda m: None)
    return out


def _registry(tmp_path: Path) -> Path:
    """A registry holding the package's committed manifest (NAME planned, not shipped)."""
    folder = tmp_path / "registry"
    folder.mkdir()
    committed = pretrained.REGISTRY / pretrained.MANIFEST_FILE
    (folder / pretrained.MANIFEST_FILE).write_text(committed.read_text())
    return folder


def test_a_trained_run_ships_and_loads_by_name(run, tmp_path, monkeypatch, demo_data):
    registry = _registry(tmp_path)
    results = tmp_path / "results.md"
    results.write_text(RESULTS)
    planned = pretrained.read_manifest(registry)
    shipped = ship_model.ship(run, NAME, corpus_manifest=str(CORPUS), device="2-core CPU",
                              results=str(results), registry=registry, log=lambda m: None)
    assert shipped == registry / NAME

    # the manifest: the planned entry filled in place, the other entries as they were, every file pinned
    models = pretrained.read_manifest(registry)
    assert list(models) == list(planned) and models[NAME].description == planned[NAME].description
    assert all(models[n] == planned[n] for n in models if n != NAME)
    files = sorted(p.name for p in shipped.iterdir())
    assert files == ["README.md", "config.json", "model.safetensors"]
    assert models[NAME].files == {f: pretrained.file_sha256(shipped / f) for f in files}
    assert pretrained.shipped_directory(NAME, registry) == shipped

    # what the card says, from the run's own records
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    tokens = sum(r["tokens"] for r in records)
    (val,) = [json.loads(line) for line in (run / "val_metrics.jsonl").read_text().splitlines()]
    species = {g["name"]: g["species"] for g in yaml.safe_load(CORPUS.read_text())["genomes"]}["lambda"]
    card = (shipped / "README.md").read_text()
    for text in (
        f"# {NAME}\n",
        f"- data: `data_manifests/pretrain_corpus.yaml` (sha256 `{pretrained.file_sha256(CORPUS)}`): "
        f"{species}",
        f"- tokens seen: {tokens:,} in 3 steps",
        "- compute: 2-core CPU, ",
        f"| lambda | {species} | 64 | {val['loss']:.4f} | {val['perplexity']:.3f} | {val['accuracy']:.3f} |",
        f"(sha256 `{pretrained.file_sha256(results)}`)",
        "| t | 1.0 ± 0.1 |",
        f'from_pretrained("{NAME}")',
        "| weights stored as | bfloat16 (vectors and A_log float32) |",
    ):
        assert text in card, text
    provenance = read_config(shipped)["provenance"]
    trained = read_config(run / "model")["provenance"]
    assert provenance["pretrain"] == trained["pretrain"]  # the training record is kept as it was
    assert provenance["created_utc"] == trained["created_utc"]
    assert provenance["release"]["tokens_seen"] == tokens == models[NAME].card["tokens_seen"]
    assert models[NAME].card["validation_loss"] == {"lambda@64": round(val["loss"], 4)}

    # loaded by name: float32 parameters within bf16 rounding of the trained model's
    monkeypatch.setattr(pretrained, "REGISTRY", registry)
    picks = torch.randint(0, 4, (2, 100), generator=torch.Generator().manual_seed(1))
    ids = torch.from_numpy(ACGT_IDS)[picks].long()
    with torch.no_grad():
        want = from_pretrained(run / "model")(ids).logits
        error = float((from_pretrained(NAME)(ids).logits - want).abs().max() / want.abs().max())
    assert 0 < error < ship_model.MAX_ROUND_TRIP_ERROR
    out = tmp_path / "emb.tsv"
    result = CliRunner().invoke(main, ["embed", NAME, str(demo_data / "lambda_virus.fa"), "-o", str(out),
                                       "--window", "1024", "--last", "drop", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 1 + 48502 // 1024

    # shipping again needs --overwrite; it then replaces the model and its pins
    with pytest.raises(ship_model.ShipError, match="already shipped"):
        ship_model.ship(run, NAME, device="x", registry=registry, log=lambda m: None)
    ship_model.ship(run, NAME, device="another", registry=registry, overwrite=True, log=lambda m: None)
    assert pretrained.read_manifest(registry)[NAME].card["compute"]["device"] == "another"
    assert pretrained.shipped_directory(NAME, registry) == shipped


def test_what_cannot_be_shipped_is_said_and_nothing_is_written(run, tmp_path, capsys):
    registry = _registry(tmp_path)
    before = (registry / pretrained.MANIFEST_FILE).read_text()
    cases = [
        (["--name", "new-model"], "new-model is not registered yet: give --description"),
        (["--name", "../escape", "--description", "x"], "'../escape' is not a model name"),
    ]
    for args, message in cases:
        assert ship_model.main([str(run), "--registry", str(registry), *args]) == 1
        assert message in capsys.readouterr().err
    assert ship_model.main([str(tmp_path), "--name", NAME, "--registry", str(registry)]) == 1
    assert "is neither a pretraining run directory" in capsys.readouterr().err
    assert sorted(p.name for p in registry.iterdir()) == [pretrained.MANIFEST_FILE]
    assert (registry / pretrained.MANIFEST_FILE).read_text() == before


def test_the_training_record_spans_jobs_and_reads_carried_xz_metrics(tmp_path):
    """Each job's elapsed_s starts again at 0 (a resume): the hours are the sum of each job's last
    value; take-back carries metrics.jsonl xz-compressed."""
    records = [{"step": 1, "tokens": 100, "elapsed_s": 1800.0},
               {"step": 2, "tokens": 100, "elapsed_s": 3600.0},
               {"step": 3, "tokens": 50, "elapsed_s": 900.0},  # a second job
               {"step": 4, "tokens": 50, "elapsed_s": 1800.0}]
    text = "".join(json.dumps(r) + "\n" for r in records)
    (tmp_path / "metrics.jsonl.xz").write_bytes(lzma.compress(text.encode()))
    assert ship_model._training_record(tmp_path) == (4, 300, 1.5)
