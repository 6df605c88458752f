"""genomamba.hf: transformers' Auto classes load genomamba model directories, with genomamba's results."""

from __future__ import annotations

import importlib
import json
import logging
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip(
    "transformers", minversion="4.40",
    reason="the Hugging Face integration needs transformers >= 4.40 (pip install 'genomamba[hf]')",
)
# transformers' classes are looked up on the module after genomamba.hf is imported: from a checkout,
# transformers >= 5 imports only once genomamba.hf has bound the `kernels` package (see there)
from safetensors.torch import load_file  # noqa: E402

import genomamba  # noqa: E402
import genomamba.hf as gh  # noqa: E402
from genomamba.errors import InputDataError  # noqa: E402
from genomamba.model import build_model  # noqa: E402
from genomamba.model_directory import ModelDirectoryError, from_pretrained, read_config, save_pretrained  # noqa: E402

AutoConfig, AutoModel = transformers.AutoConfig, transformers.AutoModel
AutoModelForMaskedLM = transformers.AutoModelForMaskedLM
AutoModelForSequenceClassification = transformers.AutoModelForSequenceClassification
MaskedLMOutput = transformers.modeling_outputs.MaskedLMOutput
SequenceClassifierOutput = transformers.modeling_outputs.SequenceClassifierOutput

SEQS = ["ACGTAGGCTAGGATCCATTA", "TTGACCATGCAAGT", "acgtNNacgtRYacgt"]
BINARY = {"task": "sequence", "problem_type": "binary", "num_labels": 1, "labels": ["promoter"]}
MULTICLASS = {"task": "sequence", "problem_type": "multiclass", "num_labels": 3,
              "labels": ["exon", "intron", "intergenic"], "pooling": "attention"}


def _save(directory, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return save_pretrained(build_model("tiny", **overrides), directory)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny model directories: MLM with post-hoc conjoining (the preset's), MLM with parameter
    sharing (two strands), and two fine-tuned ones."""
    root = tmp_path_factory.mktemp("hf")
    return {
        "ph": _save(root / "mlm_ph"),
        "ps": _save(root / "mlm_ps", seed=1, rc_strategy="ps"),
        "binary": _save(root / "binary", seed=2, head=BINARY),
        "multiclass": _save(root / "multiclass", seed=3, rc_strategy="ps", head=MULTICLASS),
    }


def test_importing_genomamba_imports_neither_torch_nor_transformers():
    code = "import sys, genomamba; assert not {'torch', 'transformers'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_transformers_the_import_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "genomamba.hf")  # imported afresh; put back afterwards
    with pytest.raises(ImportError, match=r"transformers >= 4.40: pip install 'genomamba\[hf\]'"):
        importlib.import_module("genomamba.hf")


def test_auto_config_reads_a_model_directory(models):
    assert read_config(models["binary"])["model_type"] == "genomamba"
    config = AutoConfig.from_pretrained(models["binary"])
    assert isinstance(config, gh.GenomambaConfig)
    stored = read_config(models["binary"])
    assert config.architecture == stored["architecture"] and config.provenance == stored["provenance"]
    assert config.genomamba_config().head.labels == ["promoter"]
    assert config.id2label == {0: "promoter"} and config.num_labels == 1
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size) == (32, 2, 10)
    gh.register()  # registering again changes nothing


@pytest.mark.parametrize("strategy", ["ph", "ps"])
def test_auto_model_embeddings_are_genomambas(models, strategy):
    model = AutoModel.from_pretrained(models[strategy])
    assert isinstance(model, gh.GenomambaBaseModel) and not model.training
    with torch.no_grad():
        out = model(**gh.tokenize(SEQS))
    reference = genomamba.load(models[strategy], device="cpu")
    np.testing.assert_allclose(out.pooler_output.numpy(), reference.embed(SEQS), rtol=1e-5, atol=1e-6)
    per_base = reference.embed(SEQS, pooling=None)
    for row, (hidden, expected) in enumerate(zip(out.last_hidden_state, per_base, strict=True)):
        np.testing.assert_allclose(hidden[: len(expected)].numpy(), expected, rtol=1e-5, atol=1e-6)
        assert not hidden[len(expected):].any(), row  # padded positions are zero
    assert out.last_hidden_state.shape == (3, 20, 32)


def test_weights_load_from_safetensors_without_unpickling_under_the_same_names(models, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("unpickling during load")

    for module, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(module, name, refuse)
    model = AutoModelForMaskedLM.from_pretrained(models["ps"])
    stored = load_file(str(models["ps"] / "model.safetensors"))
    state = model.state_dict()
    assert set(state) == set(stored)  # no prefix, no conversion: the file's keys are the model's
    assert all(torch.equal(state[k], v) for k, v in stored.items())


@pytest.mark.parametrize("strategy", ["ph", "ps"])
def test_masked_lm_logits_and_loss_are_genomambas(models, strategy):
    model = AutoModelForMaskedLM.from_pretrained(models[strategy])
    batch = gh.tokenize(SEQS)
    labels = batch["input_ids"].clone()
    labels[:, ::2] = -100
    with torch.no_grad():
        out = model(**batch, labels=labels)
        genomamba_model = from_pretrained(models[strategy])
        reference = genomamba_model(batch["input_ids"], batch["attention_mask"], labels=labels)
    assert isinstance(out, MaskedLMOutput) and out.logits.shape == (3, 20, 10)
    torch.testing.assert_close(out.logits, reference.logits, rtol=0, atol=0)
    torch.testing.assert_close(out.loss, reference.loss, rtol=0, atol=0)
    logits, = model(**batch, return_dict=False)
    torch.testing.assert_close(logits, reference.logits)


def test_masked_lm_needs_a_masked_lm_head(models):
    with pytest.raises(ValueError, match="not a masked-LM head"):
        AutoModelForMaskedLM.from_pretrained(models["binary"])


@pytest.mark.parametrize("name", ["binary", "multiclass"])
def test_sequence_classification_of_a_fine_tuned_directory(models, name):
    model = AutoModelForSequenceClassification.from_pretrained(models[name])
    assert isinstance(model, gh.GenomambaForSequenceClassification)
    assert model.genomamba_model.config.head == from_pretrained(models[name]).config.head  # its own head
    batch = gh.tokenize(SEQS)
    with torch.no_grad():
        out = model(**batch)
    assert isinstance(out, SequenceClassifierOutput)
    table = genomamba.load(models[name], device="cpu").predict(SEQS)  # what `genomamba predict` gives
    if name == "binary":
        assert model.config.id2label == {0: "promoter"}
        np.testing.assert_allclose(torch.sigmoid(out.logits[:, 0]).numpy(), table["p_promoter"], rtol=1e-5)
    else:
        assert list(model.config.label2id) == ["exon", "intron", "intergenic"]
        assert model.config.problem_type == "single_label_classification"
        probabilities = out.logits.softmax(-1).numpy()
        np.testing.assert_allclose(probabilities, table[["p_exon", "p_intron", "p_intergenic"]], rtol=1e-5)
        labels = torch.tensor([0, 2, 1])
        loss = model(**batch, labels=labels).loss
        assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(out.logits, labels).item())


def test_a_pretrained_directory_gets_a_fresh_classifier(models, caplog):
    with caplog.at_level(logging.WARNING, logger="genomamba.hf"):
        model = AutoModelForSequenceClassification.from_pretrained(models["ph"], num_labels=3)
    assert "head on" in caplog.text and "is new" in caplog.text
    head = model.genomamba_model.config.head
    assert (head.task, head.problem_type, head.num_labels) == ("sequence", "multiclass", 3)
    stored = load_file(str(models["ph"] / "model.safetensors"))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in stored.items() if k.startswith("backbone."))
    regression = AutoModelForSequenceClassification.from_pretrained(models["ph"], num_labels=1)
    assert regression.genomamba_model.config.head.problem_type == "regression"


def test_another_head_than_a_fine_tuned_directory_holds_is_asked_for_explicitly(models):
    with pytest.raises(ValueError, match="ignore_mismatched_sizes"):
        AutoModelForSequenceClassification.from_pretrained(models["binary"], num_labels=4)
    model = AutoModelForSequenceClassification.from_pretrained(
        models["binary"], num_labels=4, ignore_mismatched_sizes=True
    )
    assert model.genomamba_model.config.head.num_labels == 4


def test_save_pretrained_writes_a_genomamba_model_directory(models, tmp_path):
    model = AutoModelForSequenceClassification.from_pretrained(models["multiclass"])
    out = tmp_path / "out"
    out.mkdir()
    (out / "training_args.json").write_text("{}")  # a file of the training framework's, kept
    model.save_pretrained(out)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors",
                                                     "training_args.json"]
    saved, original = read_config(out), read_config(models["multiclass"])
    assert saved["model_type"] == "genomamba" and saved["architecture"] == original["architecture"]
    assert saved["provenance"]["transformers"]["class"] == "GenomambaForSequenceClassification"
    assert saved["provenance"]["created_utc"] >= original["provenance"]["created_utc"]
    batch = gh.tokenize(SEQS)
    with torch.no_grad():
        expected = model(**batch).logits
        torch.testing.assert_close(from_pretrained(out)(batch["input_ids"], batch["attention_mask"]).logits,
                                   expected)
    # a state dict given instead (as the Trainer does) is what gets written
    state = {k: v + 1 if k.endswith("classifier.bias") else v for k, v in model.state_dict().items()}
    model.save_pretrained(tmp_path / "from_state", state_dict=state)
    bias = load_file(str(tmp_path / "from_state" / "model.safetensors"))["head.classifier.bias"]
    torch.testing.assert_close(bias, model.head.classifier.bias.detach() + 1)
    with pytest.raises(ValueError, match="upload_folder"):
        model.save_pretrained(tmp_path / "hub", push_to_hub=True)


def test_directories_without_model_type(models, tmp_path):
    old = shutil.copytree(models["ph"], tmp_path / "old")
    config = json.loads((old / "config.json").read_text())
    del config["model_type"]
    (old / "config.json").write_text(json.dumps(config))
    genomamba.load(old, device="cpu").embed(SEQS[:1])  # genomamba reads it as before
    with pytest.raises(ValueError, match="model_type"):
        AutoConfig.from_pretrained(old)  # transformers cannot tell whose it is ...
    model = gh.GenomambaForMaskedLM.from_pretrained(old)  # ... the class itself loads it
    model.save_pretrained(old)  # and saving it back adds model_type
    assert isinstance(AutoModelForMaskedLM.from_pretrained(old), gh.GenomambaForMaskedLM)


def test_from_config_builds_a_fresh_genomamba_model(models):
    config = AutoConfig.from_pretrained(models["ph"])
    model = AutoModelForMaskedLM.from_config(config)
    assert model.genomamba_model.config == from_pretrained(models["ph"]).config
    assert model(**gh.tokenize(SEQS)).logits.shape == (3, 20, 10)


def test_loading_options(models, monkeypatch):
    model = AutoModel.from_pretrained(models["ph"], dtype=torch.float64, device_map="cpu")
    assert model.dtype == torch.float64 and model.device.type == "cpu"
    with pytest.raises(ValueError, match="one device"):
        gh.GenomambaBaseModel.from_pretrained(models["ph"], device_map={"backbone": "cpu", "head": "cuda:0"})
    with pytest.raises(TypeError, match="do not apply: output_loading_info"):
        gh.GenomambaBaseModel.from_pretrained(models["ph"], output_loading_info=True)
    with pytest.raises(ModelDirectoryError, match="neither a model directory nor a Hub repository id"):
        gh.GenomambaBaseModel.from_pretrained(str(models["ph"]) + "/does//not exist")
    # a Hub repository id: its three files come from the Hugging Face cache
    calls = []

    def snapshot_download(repo_id, **options):
        calls.append((repo_id, options))
        return str(models["ph"])

    monkeypatch.setattr("huggingface_hub.snapshot_download", snapshot_download)
    gh.GenomambaBaseModel.from_pretrained("someone/genomamba-tiny", revision="v1")
    assert calls == [("someone/genomamba-tiny", {
        "allow_patterns": ["config.json", "model.safetensors", "README.md"], "revision": "v1"})]


def test_tokenize_pads_on_the_right_and_names_bad_input():
    batch = gh.tokenize(["ACGT", "ACG"])
    assert batch["input_ids"].dtype == torch.long
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert gh.tokenize("ACGT")["attention_mask"].tolist() == [[1, 1, 1, 1]]
    with pytest.raises(InputDataError, match=r"sequence 1, position 3: invalid character 'X'"):
        gh.tokenize(["ACGT", "ACXT"])


def test_train_mode_and_swapped_children_reach_the_genomamba_model(models):
    model = AutoModelForSequenceClassification.from_pretrained(models["binary"])
    assert not model.genomamba_model.training
    model.train()
    assert model.genomamba_model.training
    model.head = torch.nn.Identity()  # e.g. an adapter library wrapping the head
    assert model.genomamba_model.head is model.head


def test_the_huggingface_page_runs(tmp_path, monkeypatch):
    page = Path(__file__).resolve().parents[1] / "docs" / "huggingface.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)  # the example writes its stand-in models here
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(page), "exec"), namespace)  # noqa: S102 - our own documentation
    assert (tmp_path / "hf_clf" / "model.safetensors").is_file()


@pytest.mark.slow
def test_trainer_fine_tunes_and_reloads_the_best_model(models, tmp_path):
    from transformers import Trainer, TrainingArguments

    model = AutoModelForSequenceClassification.from_pretrained(models["ph"], num_labels=2)
    seqs = ["ACGTACGTAC", "GGGGCCCCAA", "ATATATATAT", "CGCGCGCGTT"] * 4
    batch = gh.tokenize(seqs)
    rows = [{"input_ids": batch["input_ids"][i], "attention_mask": batch["attention_mask"][i],
             "labels": torch.tensor(i % 2)} for i in range(len(seqs))]
    # transformers 4.40 names the evaluation schedule evaluation_strategy; later versions eval_strategy
    from packaging.version import Version

    new_name = Version(transformers.__version__) >= Version("4.41")
    schedule = {"eval_strategy" if new_name else "evaluation_strategy": "steps"}
    args = TrainingArguments(
        output_dir=str(tmp_path / "run"), max_steps=4, per_device_train_batch_size=4, save_strategy="steps",
        save_steps=2, eval_steps=2, load_best_model_at_end=True, report_to=[], use_cpu=True,
        disable_tqdm=True, **schedule,
    )
    trainer = Trainer(model=model, args=args, train_dataset=rows, eval_dataset=rows)
    trainer.train()
    trainer.save_model()  # into the run folder, beside the Trainer's checkpoint-N folders
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model.eval()(**batch).logits)
    assert len(genomamba.load(tmp_path / "run", device="cpu").predict(seqs)) == 16
