"""Model directories: save -> load gives identical outputs; every broken directory fails clearly."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).parent / "model"))
from model_cases import make_model, pad_batch, random_bases  # noqa: E402

from genomamba import model_directory  # noqa: E402
from genomamba.alphabet import ALPHABET_VERSION  # noqa: E402
from genomamba.errors import EXIT_DATA  # noqa: E402
from genomamba.model import HeadConfig  # noqa: E402
from genomamba.model_directory import ModelDirectoryError, from_pretrained, read_config, save_pretrained  # noqa: E402

CLASSIFIER = {"task": "sequence", "problem_type": "multiclass", "num_labels": 3, "labels": ["a", "b", "c"],
              "pooling": "last"}


def _batch():
    return pad_batch([random_bases(1, n, seed=n)[0] for n in (30, 12)], 30)


@pytest.mark.parametrize(
    "overrides",
    [
        {"rc_strategy": "ps"},  # MLM head tied to the embedding
        {"rc_strategy": "ph", "tie_projections": False, "combine": "product", "head": CLASSIFIER},
        {"rc_strategy": "none", "bidirectional": False, "head": {"task": "token", "num_labels": 2}},
    ],
)
def test_save_load_gives_identical_outputs(tmp_path, overrides):
    model = make_model(dtype=torch.float32, **overrides)
    ids, mask = _batch()
    before = model(ids, mask).logits
    target = save_pretrained(model, tmp_path / "m", data_manifest_sha256="ab" * 32, provenance={"run": "t1"})
    assert sorted(p.name for p in target.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = from_pretrained(target)
    assert loaded.config == model.config and not loaded.training
    assert torch.equal(loaded(ids, mask).logits, before)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_config_json_and_model_card(tmp_path):
    model = make_model(dtype=torch.float32, head=CLASSIFIER)
    save_pretrained(model, tmp_path / "m", data_manifest_sha256="cd" * 32)
    config = read_config(tmp_path / "m")
    assert config["format"] == "genomamba-model"
    assert config["format_version"] == model_directory.FORMAT_VERSION
    assert config["alphabet"]["version"] == ALPHABET_VERSION
    assert config["architecture"]["head"]["labels"] == ["a", "b", "c"]
    assert config["num_parameters"] == model.num_parameters()
    prov = config["provenance"]
    assert prov["training_data_manifest_sha256"] == "cd" * 32 and prov["genomamba_version"]
    assert prov["git_commit"] is None or len(prov["git_commit"]) == 40
    card = (tmp_path / "m" / "README.md").read_text()
    assert f"{model.num_parameters():,}" in card and "multiclass" in card and "a, b, c" in card
    # the weights file holds each tensor once, by state-dict name
    assert set(load_file(str(tmp_path / "m" / "model.safetensors"))) == set(model.state_dict())


def test_model_card_carries_hub_metadata(tmp_path):
    import yaml

    save_pretrained(make_model(dtype=torch.float32), tmp_path / "mlm")
    config = read_config(tmp_path / "mlm")
    assert config["model_type"] == model_directory.MODEL_TYPE == "genomamba"
    card = (tmp_path / "mlm" / "README.md").read_text()
    front, body = card.split("---\n")[1:3]
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "genomamba" and meta["pipeline_tag"] == "fill-mask"
    assert {"dna", "genomics", "mamba", "state-space-model", "masked-language-modeling"} <= set(meta["tags"])
    assert meta["license"] == "other" and "datasets" not in meta and "metrics" not in meta
    assert "# genomamba model" in body and "| parameters |" in body and "import genomamba.hf" in body
    # a fine-tuned model: its task, its early-stopping metric by the Hub's name, the recorded licence
    # and datasets
    prov = {"license": "cc-by-4.0", "datasets": ["org/promoters"],
            "finetune": {"early_stopping": {"metric": "mcc", "value": 0.5, "patience": 3}}}
    save_pretrained(make_model(dtype=torch.float32, head=CLASSIFIER), tmp_path / "clf", provenance=prov)
    meta = yaml.safe_load((tmp_path / "clf" / "README.md").read_text().split("---\n")[1])
    assert meta["pipeline_tag"] == "text-classification" and "sequence-classification" in meta["tags"]
    assert meta["license"] == "cc-by-4.0" and meta["datasets"] == ["org/promoters"]
    assert meta["metrics"] == ["matthews_correlation"]


def test_directories_without_model_type_still_load(tmp_path):
    d = _saved(tmp_path)
    _edit_config(d, lambda c: c.pop("model_type"))  # as written before model_type existed
    assert "model_type" not in read_config(d)
    from_pretrained(d)


def test_save_into_an_existing_directory_keeps_its_other_files(tmp_path):
    d = _saved(tmp_path)
    (d / "trainer_state.json").write_text("{}")
    second = make_model(seed=5, dtype=torch.float32)
    save_pretrained(second, d, into_existing=True)
    assert sorted(p.name for p in d.iterdir()) == ["README.md", "config.json", "model.safetensors",
                                                     "trainer_state.json"]
    ids, mask = _batch()
    assert torch.equal(from_pretrained(d)(ids, mask).logits, second(ids, mask).logits)
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary directory left behind


def test_loading_never_unpickles(tmp_path, monkeypatch):
    save_pretrained(make_model(dtype=torch.float32), tmp_path / "m")

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling during load")

    for mod, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(mod, name, refuse)
    from_pretrained(tmp_path / "m")


def _saved(tmp_path, **overrides) -> Path:
    return save_pretrained(make_model(dtype=torch.float32, **overrides), tmp_path / "m")


def _rewrite_tensors(directory: Path, change) -> None:
    tensors = load_file(str(directory / "model.safetensors"))
    change(tensors)
    save_file(tensors, str(directory / "model.safetensors"))


def test_missing_tensor_is_named(tmp_path):
    d = _saved(tmp_path)
    _rewrite_tensors(d, lambda t: t.pop("backbone.layers.1.mixer.rev.A_log"))
    needle = r"1 missing tensor\(s\): backbone.layers.1.mixer.rev.A_log"
    with pytest.raises(ModelDirectoryError, match=needle) as err:
        from_pretrained(d)
    assert err.value.exit_code == EXIT_DATA


def test_extra_tensor_is_named(tmp_path):
    d = _saved(tmp_path)
    _rewrite_tensors(d, lambda t: t.update({"backbone.layers.2.norm.weight": torch.ones(16)}))
    with pytest.raises(ModelDirectoryError, match=r"1 unexpected tensor\(s\): backbone.layers.2.norm.weight"):
        from_pretrained(d)


def test_shape_mismatch_is_named(tmp_path):
    d = _saved(tmp_path)
    _rewrite_tensors(d, lambda t: t.update({"backbone.norm_f.weight": torch.ones(8)}))
    with pytest.raises(ModelDirectoryError, match=r"backbone.norm_f.weight: file \(8,\), model \(16,\)"):
        from_pretrained(d)


def _edit_config(directory: Path, change) -> None:
    path = directory / "config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


def test_newer_format_version_is_refused(tmp_path):
    d = _saved(tmp_path)
    _edit_config(d, lambda c: c.update(format_version=model_directory.FORMAT_VERSION + 1))
    with pytest.raises(ModelDirectoryError, match=r"format version 2.*reads versions up to 1.*upgrade"):
        from_pretrained(d)


def test_other_alphabet_version_is_refused(tmp_path):
    d = _saved(tmp_path)
    _edit_config(d, lambda c: c["alphabet"].update(version=ALPHABET_VERSION + 1))
    with pytest.raises(ModelDirectoryError, match="alphabet version"):
        from_pretrained(d)


def test_unknown_architecture_key_is_refused(tmp_path):
    d = _saved(tmp_path)
    _edit_config(d, lambda c: c["architecture"].update(attention_heads=8))
    with pytest.raises(ModelDirectoryError, match="attention_heads"):
        from_pretrained(d)


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ModelDirectoryError, match="config.json is missing"):
        from_pretrained(tmp_path)
    d = _saved(tmp_path)
    (d / "model.safetensors").unlink()
    with pytest.raises(ModelDirectoryError, match="model.safetensors is missing"):
        from_pretrained(d)
    (d / "model.safetensors").write_bytes(b"\x80\x04not safetensors")
    with pytest.raises(ModelDirectoryError, match="cannot read"):
        from_pretrained(d)
    (d / "config.json").write_text("{not json")
    with pytest.raises(ModelDirectoryError, match="not valid JSON"):
        from_pretrained(d)


def test_save_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "m"

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(model_directory, "model_card", crash)  # fails after the weights are written
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(make_model(dtype=torch.float32), target)
    assert list(tmp_path.iterdir()) == []  # no target, no temporary directory left behind


def test_overwrite_replaces_only_when_asked(tmp_path, monkeypatch):
    d = _saved(tmp_path)
    with pytest.raises(FileExistsError):
        save_pretrained(make_model(dtype=torch.float32), d)
    second = make_model(seed=5, dtype=torch.float32)
    monkeypatch.setattr(model_directory, "model_card", lambda c: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        save_pretrained(second, d, overwrite=True)
    from_pretrained(d)  # a failed overwrite leaves the old model intact
    monkeypatch.undo()
    save_pretrained(second, d, overwrite=True)
    ids, mask = _batch()
    assert torch.equal(from_pretrained(d)(ids, mask).logits, second(ids, mask).logits)
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_new_head_on_a_pretrained_backbone(tmp_path):
    pretrained = make_model(dtype=torch.float32, rc_strategy="ps")
    d = save_pretrained(pretrained, tmp_path / "mlm")
    head = HeadConfig(task="sequence", problem_type="binary")
    model = from_pretrained(d, head=head, gradient_checkpointing=True)
    assert model.config.head == head and model.config.gradient_checkpointing
    for name, t in pretrained.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[name], t), name
    ids, mask = _batch()
    assert model(ids, mask).logits.shape == (2, 1)
    with pytest.raises(ModelDirectoryError, match="head.classes"):
        from_pretrained(d, head={"task": "sequence", "classes": 2})


def test_load_to_dtype(tmp_path):
    d = _saved(tmp_path)
    model = from_pretrained(d, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


# -- shipping: bf16 weights, the release card, names -----------------------------------------------
def test_bf16_weights_round_trip_within_bf16_rounding(tmp_path):
    """Matrices are stored in bf16, vectors and A_log in float32; the model loads in float32 and
    its outputs differ from the float32 model's by no more than a model with every tensor rounded
    to bf16 differs (the measured bf16 tolerance), and by something (the weights were converted)."""
    oracle = make_model(dtype=torch.float64, rc_strategy="ps")
    model = make_model(dtype=torch.float32, rc_strategy="ps")
    ids, mask = _batch()
    want = oracle(ids, mask).logits
    d = save_pretrained(model, tmp_path / "bf16", weights_dtype=torch.bfloat16)
    full = save_pretrained(model, tmp_path / "fp32")
    assert (d / "model.safetensors").stat().st_size < 0.75 * (full / "model.safetensors").stat().st_size
    stored = load_file(str(d / "model.safetensors"))
    for name, t in stored.items():
        kept = t.dim() < 2 or name.endswith(".A_log")
        assert t.dtype == (torch.float32 if kept else torch.bfloat16), name
    assert read_config(d)["provenance"]["weights_dtype"] == "bfloat16 (vectors and A_log float32)"
    assert "| weights stored as | bfloat16 (vectors and A_log float32) |" in (d / "README.md").read_text()

    loaded = from_pretrained(d)
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    rounded = make_model(dtype=torch.float32, rc_strategy="ps")
    with torch.no_grad():
        for p in rounded.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    error = (loaded(ids, mask).logits.double() - want).abs().max()
    tolerance = (rounded(ids, mask).logits.double() - want).abs().max()
    assert 0 < error <= 2 * tolerance, (error, tolerance)
    assert error < 2e-2 * want.abs().max()  # ship_model.py's bound


def test_the_weights_file_gets_the_mode_of_the_other_files(tmp_path):
    """safetensors creates files private (0600); a shipped or shared model must be readable."""
    d = _saved(tmp_path)
    assert (d / "model.safetensors").stat().st_mode == (d / "config.json").stat().st_mode


RELEASE = {
    "name": "genomamba-test-1k",
    "description": "a tiny test model",
    "training_data": {"corpus_manifest": "data_manifests/pretrain_corpus.yaml",
                      "corpus_manifest_sha256": "e" * 64, "species": ["Homo sapiens", "Escherichia coli"]},
    "tokens_seen": 2_000_000_000,
    "steps": 16_000,
    "compute": {"device": "1x NVIDIA H100 80GB", "hours": 0.55},
    "validation": [{"step": 16000, "set": "human_chrX_70mb", "species": "Homo sapiens", "seq_len": 1024,
                    "loss": 1.0312, "perplexity": 2.8046, "accuracy": 0.47}],
    "benchmark": {"source": "bench/results.md", "sha256": "f" * 64,
                  "table": "Test mcc x 100\n\n| task | probe |\n|---|---:|\n| GUE_EMP_H3 | 61.2 ± 0.4 |\n"},
}


def test_the_card_of_a_shipped_model_says_how_it_was_trained(tmp_path):
    d = save_pretrained(make_model(dtype=torch.float32), tmp_path / "m", data_manifest_sha256="cd" * 32,
                        provenance={"release": RELEASE})
    card = (d / "README.md").read_text()
    for text in (
        "# genomamba-test-1k\n\nA tiny test model.",
        f"- data: `data_manifests/pretrain_corpus.yaml` (sha256 `{'e' * 64}`): Homo sapiens, "
        "Escherichia coli",
        "- tokens seen: 2,000,000,000 in 16,000 steps",
        "- compute: 1x NVIDIA H100 80GB, 0.55 hours of training",
        "| human_chrX_70mb | Homo sapiens | 1,024 | 1.0312 | 2.805 | 0.470 |",
        f"From `bench/results.md` (sha256 `{'f' * 64}`)",
        "| GUE_EMP_H3 | 61.2 ± 0.4 |",
        'from_pretrained("genomamba-test-1k")',
        "`genomamba embed genomamba-test-1k seqs.fa -o emb.parquet`",
        f"| training data manifest sha256 | {'cd' * 32} |",
    ):
        assert text in card, text
    # what was not recorded is said to be so
    bare = {"name": "x", "tokens_seen": None, "compute": {}, "validation": [], "benchmark": None}
    d = save_pretrained(make_model(dtype=torch.float32), tmp_path / "bare", provenance={"release": bare})
    card = (d / "README.md").read_text()
    for text in ("- data: `not recorded`", "- tokens seen: not recorded",
                 "device not recorded, time not recorded", "not recorded (the run had no validation data)",
                 "Not measured for this release."):
        assert text in card, text
    # a model that is not shipped has no such sections
    assert "## Training" not in (_saved(tmp_path / "plain")).joinpath("README.md").read_text()


def test_an_unregistered_name_is_still_a_missing_directory(tmp_path, monkeypatch):
    from genomamba import pretrained

    monkeypatch.setattr(pretrained, "REGISTRY", tmp_path / "registry")  # no models.json: nothing registered
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelDirectoryError, match="genomamba-nothing is not a genomamba model directory"):
        from_pretrained("genomamba-nothing")
