"""Fine-tuning with LoRA adapters (genomamba finetune --lora): what trains, what is written, reloading."""

from __future__ import annotations

import json

import pytest
import torch
from finetune_cases import random_table, small_config
from safetensors.torch import load_file

import genomamba
import genomamba.model.lora as lora
from genomamba.errors import UnavailableError
from genomamba.model import build_model
from genomamba.model.config import ConfigError
from genomamba.model_directory import (
    ModelDirectoryError,
    from_pretrained,
    load_adapter,
    read_config,
    save_pretrained,
)
from genomamba.train.finetune import finetune


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    try:
        lora.import_peft()
    except UnavailableError as exc:
        pytest.skip(str(exc))
    torch.manual_seed(0)
    return save_pretrained(build_model("tiny", rc_strategy="ph"), tmp_path_factory.mktemp("base") / "mlm")


def _lora_run(tmp_path, pretrained, monkeypatch, **changes):
    """A short LoRA run; returns (result, log lines, the model's state just before merging)."""
    before_merge = {}
    merge = lora.merge_lora

    def recording_merge(peft_model):
        before_merge.update({k: v.clone() for k, v in peft_model.get_base_model().state_dict().items()})
        return merge(peft_model)

    monkeypatch.setattr(lora, "merge_lora", recording_merge)
    data = random_table(tmp_path / "d.csv", label=lambda seq, i: "abc"[i % 3])
    config = small_config(data, tmp_path / "out", model=str(pretrained), preset=None, lora=4, lr=2e-2,
                          max_steps=4, pooling="attention", **changes)
    lines = []
    return finetune(config, log=lines.append), lines, before_merge


def test_lora_trains_adapters_and_head_only_and_exports_both_forms(tmp_path, pretrained, monkeypatch):
    # strand-specific: the ph base is exported as rc_strategy none, which the adapter must record
    result, lines, trained = _lora_run(tmp_path, pretrained, monkeypatch, strand_specific=True)
    base = from_pretrained(pretrained)
    base_state = base.backbone.state_dict()

    # the base weights are bit-identical after training; the adapters moved off their zero start
    frozen = {k: v for k, v in trained.items() if k.startswith("backbone.") and ".lora_" not in k}
    assert len(frozen) == len(base_state)
    for name, tensor in frozen.items():
        stored = name.replace("backbone.", "", 1).replace(".base_layer", "")
        assert torch.equal(tensor, base_state[stored]), name
    lora_b = [v for k, v in trained.items() if ".lora_B." in k]
    assert len(lora_b) == 4 and all(v.abs().max() > 0 for v in lora_b)

    # the trainable parameters are in the log and in metrics.json
    n_lora = sum(v.numel() for k, v in trained.items() if ".lora_" in k)
    n_head = sum(v.numel() for k, v in trained.items() if k.startswith("head.modules_to_save."))
    report = result.report
    assert report["trainable_parameters"]["trainable"] == n_lora + n_head
    targets = ["in_proj", "out_proj"]
    assert report["lora"] == {"rank": 4, "alpha": 8, "dropout": 0.0, "target_modules": targets}
    logged = [line for line in lines if "trainable parameters" in line]
    assert len(logged) == 1 and f"{n_lora + n_head:,} of" in logged[0] and "LoRA rank 4" in logged[0]
    assert json.loads((result.out / "metrics.json").read_text())["lora"]["rank"] == 4

    # OUT/model: an ordinary model directory with the adapters merged in
    tuned = from_pretrained(result.model_dir)
    assert report["trainable_parameters"]["total"] == tuned.num_parameters() + n_lora
    assert tuned.config.rc_strategy == "none" and tuned.config.head.labels == ["a", "b", "c"]
    assert set(load_file(str(result.model_dir / "model.safetensors"))) == set(
        build_model(tuned.config).state_dict()
    )
    tuned_state = tuned.backbone.state_dict()
    for name, tensor in base_state.items():
        adapted = name.endswith(("in_proj.weight", "out_proj.weight"))
        assert torch.equal(tensor, tuned_state[name]) != adapted, name
    assert read_config(result.model_dir)["provenance"]["finetune"]["config"]["lora"] == 4
    sequences = ["ACGTTGCAAGGCTTACGATCGATCGGA", "TTGACCA"]
    table = genomamba.load(result.model_dir, device="cpu").predict(sequences)
    assert len(table) == 2

    # OUT/adapter: the adapters and head alone, which re-applied to the base give the exported model
    adapter = result.out / "adapter"
    assert sorted(p.name for p in adapter.iterdir()) == [
        "adapter_config.json", "adapter_model.safetensors", "genomamba_adapter.json"
    ]
    assert (adapter / "adapter_model.safetensors").stat().st_size < (
        result.model_dir / "model.safetensors").stat().st_size / 3
    peft_config = json.loads((adapter / "adapter_config.json").read_text())
    assert peft_config["base_model_name_or_path"] == str(pretrained) and peft_config["r"] == 4
    ids, mask = _batch(sequences)
    with torch.no_grad():
        expected = tuned(ids, mask).logits
        again = load_adapter(pretrained, adapter)(ids, mask).logits
    torch.testing.assert_close(again, expected, atol=1e-5, rtol=1e-5)

    # PEFT's own loader reads the directory too (on the base built with the adapted architecture)
    from peft import PeftModel

    architecture = json.loads((adapter / "genomamba_adapter.json").read_text())["architecture"]
    shell = from_pretrained(pretrained, head=architecture["head"], rc_strategy="none")
    with torch.no_grad():
        by_peft = PeftModel.from_pretrained(shell, str(adapter)).merge_and_unload().eval()(ids, mask).logits
    torch.testing.assert_close(by_peft, expected, atol=1e-5, rtol=1e-5)

    # an adapter belongs to the base it was trained on
    torch.manual_seed(1)
    other = save_pretrained(build_model("tiny", rc_strategy="ph"), tmp_path / "other")
    with pytest.raises(ModelDirectoryError, match="trained on a base model with weights sha256"):
        load_adapter(other, adapter)


def _batch(sequences):
    from genomamba.api import encode_sequences
    from genomamba.runtime.batching import pad_batch

    return pad_batch(encode_sequences(sequences), torch.device("cpu"))


def test_lora_on_a_preset_warns_and_writes_no_adapter(tmp_path, pretrained):
    data = random_table(tmp_path / "d.csv", n=16)
    lines = []
    result = finetune(small_config(data, tmp_path / "out", lora=2, max_steps=1), log=lines.append)
    assert any("warning: LoRA on a model initialised at random" in line for line in lines)
    assert not (result.out / "adapter").exists()
    assert from_pretrained(result.model_dir).config.head.task == "sequence"
    assert result.report["lora"]["alpha"] == 4 and result.report["trainable_parameters"]["trainable"] > 0


def test_lora_options_are_checked(tmp_path, pretrained):
    data = random_table(tmp_path / "d.csv", n=8)
    with pytest.raises(ConfigError, match="freeze_backbone and lora exclude each other"):
        small_config(data, tmp_path / "o", model=str(pretrained), preset=None, freeze_backbone=True, lora=4)
    with pytest.raises(ConfigError, match="give --lora RANK"):
        small_config(data, tmp_path / "o", lora_alpha=8.0)
    with pytest.raises(ConfigError, match="positive integer"):
        small_config(data, tmp_path / "o", lora=0)
    with pytest.raises(ConfigError, match="lora_dropout"):
        small_config(data, tmp_path / "o", lora=2, lora_dropout=1.5)
