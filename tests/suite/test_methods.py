"""Method names: parsing, typed options, what needs a pretrained model, and usage errors."""

from __future__ import annotations

import pytest

from genomamba.suite.methods import MethodError, parse_method


def test_baselines_and_finetune_methods_parse():
    assert parse_method("kmer-lr").kind == "kmer-lr"
    method = parse_method("finetune:small-1k,pooling=attention,strand_specific=true,lr=3e-4,epochs=20")
    assert (method.kind, method.source) == ("finetune", "small-1k")
    assert method.options == {"pooling": "attention", "strand_specific": True, "lr": 3e-4, "epochs": 20}
    assert not method.needs_model
    assert parse_method("finetune:model,freeze_backbone=yes").needs_model
    assert parse_method("probe,pooling=center,layer=2").options == {"pooling": "center", "layer": 2}
    assert parse_method("probe").needs_model


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("svm", "unknown method"),
        ("kmer-lr,k=3", "unknown method"),
        ("finetune:huge", "unknown preset 'huge'"),
        ("finetune:tiny,colour=blue", "colour: unknown key"),
        ("finetune:tiny,seed=3", "seed: unknown key"),  # seeds come from --seeds
        ("finetune:tiny,poolng=max", r"poolng: unknown key \(did you mean pooling\?\)"),
        ("finetune:tiny,dropout=1.5", r"dropout: must lie in \[0, 1\)"),
        ("finetune:tiny,epochs=many", "epochs='many' is not a int"),
        ("finetune:tiny,strand_specific=perhaps", "is not a bool"),
        ("finetune:tiny,pooling=median", "head.pooling|pooling"),
        ("finetune:tiny,freeze_backbone=true", "pretrained model"),
        ("finetune:tiny,strand_specific=true,rc_strategy=ps", "strand-specific"),
        ("probe,pooling=attention", "probe pooling"),
    ],
)
def test_bad_methods_say_what_is_wrong(text, message):
    with pytest.raises(MethodError, match=message):
        parse_method(text)
