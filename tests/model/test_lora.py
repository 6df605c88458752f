"""LoRA adapters on the Mamba layers (genomamba.model.lora): where they sit, what trains, merging."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from model_cases import make_model, random_bases

from genomamba.errors import UnavailableError
from genomamba.model.lora import (
    LORA_TARGETS,
    adapter_state,
    add_lora,
    import_peft,
    load_lora,
    merge_lora,
    trainable_parameters,
)

REPO = Path(__file__).resolve().parents[2]
HEAD = {"task": "sequence", "problem_type": "multiclass", "num_labels": 3, "pooling": "attention",
        "dropout": 0.0, "labels": ["a", "b", "c"]}
# every mixer layout: BiMamba with tied / untied projections (one or two strands), plain Mamba
LAYOUTS = {
    "ps-tied": {"rc_strategy": "ps"},
    "ph-untied": {"rc_strategy": "ph", "tie_projections": False},
    "none-product": {"rc_strategy": "none", "tie_projections": False, "combine": "product"},
    "unidirectional": {"rc_strategy": "none", "bidirectional": False},
}


@pytest.fixture(scope="module", autouse=True)
def _peft():
    """Skip without peft (imported through import_peft, as genomamba does: see the kernels test)."""
    try:
        import_peft()
    except UnavailableError as exc:
        pytest.skip(str(exc))


def _lora_layers(model):
    from peft.tuners.lora import LoraLayer

    return {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer)}


def _adapted(layout: str, seed: int = 0, rank: int = 2):
    model = make_model(seed, dtype=torch.float32, head=HEAD, **LAYOUTS[layout])
    return model, add_lora(model, rank)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_adapter_is_on_the_forward_path(layout):
    model, _ = _adapted(layout)
    layers = _lora_layers(model)
    names = {n.rsplit(".", 1)[-1] for n in layers}
    expected = {"in_proj", "out_proj"} | ({"in_proj_rev", "out_proj_rev"} if "untied" in layout or
                                          "product" in layout else set())
    assert names == expected and names <= set(LORA_TARGETS)
    assert len(layers) == len(expected) * 2  # in each of the 2 layers
    # no wrapper where the mixer reads .weight directly: a wrapper there would never run
    assert not any(n.endswith(("x_proj", "dt_proj", "conv1d")) for n in layers)

    ids = random_bases(2, 24)
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[1, 17:] = False
    called = set()
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: called.add(n)) for n, m in layers.items()]
    model.eval()
    with torch.no_grad():
        base = model(ids, mask).logits
    for hook in hooks:
        hook.remove()
    assert called == set(layers)  # every adapter ran

    # B starts at zero, so a fresh adapter changes nothing; each adapter, once non-zero, changes the output
    with torch.no_grad():
        for name, layer in layers.items():
            weight = layer.lora_B["default"].weight
            weight.normal_(std=0.5)
            assert (model(ids, mask).logits - base).abs().max() > 1e-4, name
            weight.zero_()
        torch.testing.assert_close(model(ids, mask).logits, base, atol=0, rtol=0)


def test_only_the_adapters_and_the_head_train():
    model, _ = _adapted("ps-tied")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n or n.startswith("head.modules_to_save.")
                             for n in trainable)
    # the whole head trains, attention pooling included
    head = {n.replace("head.modules_to_save.default.", "") for n in trainable if n.startswith("head.")}
    assert head == {"attention.score.weight", "attention.score.bias", "classifier.weight", "classifier.bias"}
    for layer in _lora_layers(model).values():  # B = 0 would give A no gradient on the first step
        torch.nn.init.normal_(layer.lora_B["default"].weight, std=0.1)
    model.train()
    ids = random_bases(4, 20)
    model(ids, labels=torch.tensor([0, 1, 2, 1])).loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad == trainable

    n_trainable, n_total = trainable_parameters(model)
    assert n_trainable == sum(p.numel() for n, p in model.named_parameters() if n in trainable)
    lora = sum(p.numel() for n, p in model.named_parameters() if ".lora_" in n)
    assert n_total == make_model(0, dtype=torch.float32, head=HEAD, rc_strategy="ps").num_parameters() + lora


@pytest.mark.parametrize("layout", ["ps-tied", "ph-untied"])
def test_merged_model_computes_what_the_adapted_one_does(layout):
    model, peft_model = _adapted(layout, rank=3)
    with torch.no_grad():
        for layer in _lora_layers(model).values():
            layer.lora_B["default"].weight.normal_(std=0.2)
        model.head.modules_to_save["default"].classifier.bias.fill_(0.3)
    ids = random_bases(3, 30)
    model.eval()
    with torch.no_grad():
        adapted = model(ids).logits
    config, tensors = adapter_state(peft_model)
    merged = merge_lora(peft_model)
    plain = make_model(0, dtype=torch.float32, head=HEAD, **LAYOUTS[layout])
    assert type(merged) is type(plain) and list(merged.state_dict()) == list(plain.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, adapted, atol=1e-5, rtol=1e-5)

    # the saved form applied to a fresh copy of the base reproduces the merged model
    assert config["r"] == 3 and config["lora_alpha"] == 6 and config["modules_to_save"] == ["head"]
    assert sorted(config["target_modules"]) == sorted(LORA_TARGETS)
    again = merge_lora(load_lora(make_model(0, dtype=torch.float32, head=HEAD, **LAYOUTS[layout]),
                                 config, tensors))
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, adapted, atol=1e-5, rtol=1e-5)

    other_layout = "ph-untied" if layout == "ps-tied" else "ps-tied"
    with pytest.raises(ValueError, match="does not fit the model"):
        load_lora(make_model(0, dtype=torch.float32, head=HEAD, **LAYOUTS[other_layout]), config, tensors)
    bad = {k: v[..., :1] if ".lora_A." in k else v for k, v in tensors.items()}
    with pytest.raises(ValueError, match="does not fit the model"):
        load_lora(make_model(0, dtype=torch.float32, head=HEAD, **LAYOUTS[layout]), config, bad)


def test_peft_is_found_even_where_the_repository_kernels_folder_shadows_its_dependency():
    # pytest puts the repository root on sys.path, where kernels/ (genomamba.kernels when installed)
    # answers to the top-level name that transformers imports for the installed package `kernels`.
    import importlib.metadata

    try:
        importlib.metadata.distribution("kernels")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the package `kernels` is not installed here: nothing is shadowed")
    assert Path(sys.modules["kernels"].__file__).resolve().parent != (REPO / "kernels").resolve()


def test_without_peft_lora_is_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` raises ImportError
    with pytest.raises(UnavailableError, match=r"pip install 'genomamba\[peft\]'"):
        add_lora(make_model(0), 2)
