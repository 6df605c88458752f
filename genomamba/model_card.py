"""The model card: the README.md of a model directory, written from its ``config.json`` dict.

Hugging Face Hub metadata as YAML front matter (:func:`card_metadata`: licence, library, tags,
pipeline tag, datasets, metrics), then a description for people (:func:`model_card`); a shipped
model's card also says how it was trained and how it scored. No torch: the dict is all it reads.
:mod:`genomamba.model_directory` writes it beside the weights.
"""

from __future__ import annotations

from typing import Any

import yaml

#: what the Hub shows for a head: its pipeline tag and a tag naming the task
_HUB_TASKS = {
    "mlm": ("fill-mask", "masked-language-modeling"),
    "sequence": ("text-classification", "sequence-classification"),
    "token": ("token-classification", "token-classification"),
    "none": ("feature-extraction", "feature-extraction"),
}
#: genomamba's metric names -> the names the Hub (the `evaluate` library) uses
_HUB_METRICS = {"mcc": "matthews_correlation", "auroc": "roc_auc", "auprc": "average_precision",
                "pearson": "pearsonr", "spearman": "spearmanr"}


def card_metadata(config: dict) -> dict:
    """The Hub metadata of a model card (its YAML front matter), from a ``config.json`` dict.

    ``license`` is the provenance's ``license`` entry, else ``other``: a model's terms follow from
    its training data, which genomamba cannot judge. ``datasets`` (Hub dataset ids) come from a
    provenance ``datasets`` list and ``metrics`` from the fine-tuning's early-stopping metric; both
    are left out when unknown.
    """
    arch, prov = config["architecture"], config["provenance"]
    pipeline_tag, task_tag = _HUB_TASKS[arch["head"]["task"]]
    tags = ["genomamba", "dna", "genomics", "mamba", "state-space-model", task_tag]
    if arch["bidirectional"]:
        tags.append("bidirectional")
    if arch["rc_strategy"] != "none":
        tags.append("reverse-complement")
    meta: dict[str, Any] = {
        "license": prov.get("license") if isinstance(prov.get("license"), str) else "other",
        "library_name": "genomamba",
        "pipeline_tag": pipeline_tag,
        "tags": tags,
    }
    datasets = prov.get("datasets")
    if isinstance(datasets, list) and datasets:
        meta["datasets"] = [str(d) for d in datasets]
    metric = ((prov.get("finetune") or {}).get("early_stopping") or {}).get("metric")
    if isinstance(metric, str) and metric != "loss":
        meta["metrics"] = [_HUB_METRICS.get(metric, metric)]
    return meta


def model_card(config: dict) -> str:
    """The README.md of a model directory, written from its ``config.json`` dict: Hub metadata as
    YAML front matter (:func:`card_metadata`), then a description for people.

    A shipped model's provenance carries ``release`` (written by ``scripts/ship_model.py``), and
    its card then also says how it was trained: ``name``, ``description``, ``training_data``
    (``corpus_manifest`` and its ``corpus_manifest_sha256``, ``species``), ``tokens_seen``,
    ``steps``, ``compute`` (``device``, ``hours``), ``validation`` (records of
    ``val_metrics.jsonl`` at the last step, each with its ``species``) and ``benchmark``
    (``source``, ``sha256`` and the ``table`` of the development suite's ``results.md``).
    """
    arch, prov = config["architecture"], config["provenance"]
    release = prov.get("release") or {}
    head, mixer = arch["head"], arch["mixer"]
    rc = {
        "ps": "parameter sharing (exactly RC-equivariant)",
        "ph": "post-hoc conjoining (averaged over both strands at inference)",
        "none": "none",
    }[arch["rc_strategy"]]
    task = head["task"]
    if head["problem_type"]:
        task += f" ({head['problem_type']}, {head['num_labels']} outputs)"
    if arch["bidirectional"]:
        ties = "tied in/out projections" if arch["tie_projections"] else "untied projections"
        mixer_text = f"BiMamba, {ties}, combine {arch['combine']}"
    else:
        mixer_text = "unidirectional Mamba"
    d_inner = arch["d_model"] * mixer["expand"]
    rows = [
        ("preset", arch.get("preset") or "custom"),
        ("parameters", f"{config['num_parameters']:,}"),
        ("layers x d_model", f"{arch['n_layer']} x {arch['d_model']}"),
        ("d_inner, d_state", f"{d_inner}, {mixer['d_state']}"),
        ("mixer", mixer_text),
        ("reverse complement", rc),
        ("head", task),
        ("labels", ", ".join(head["labels"]) if head.get("labels") else "-"),
        ("window sized for", f"{arch['max_length']:,} bases" if arch.get("max_length") else "-"),
        ("alphabet", f"version {config['alphabet']['version']}: {' '.join(config['alphabet']['tokens'])}"),
        ("genomamba", f"{prov['genomamba_version']} (commit {prov.get('git_commit') or 'unknown'})"),
        ("training data manifest sha256", prov.get("training_data_manifest_sha256") or "not recorded"),
        ("created (UTC)", prov["created_utc"]),
    ]
    if prov.get("weights_dtype"):
        rows.insert(2, ("weights stored as", prov["weights_dtype"]))
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    where = release.get("name") or "path/to/this/directory"
    meta = card_metadata(config)
    front_matter = yaml.safe_dump(meta, sort_keys=False, default_flow_style=False)
    return (
        f"---\n{front_matter}---\n\n"
        f"# {release.get('name') or 'genomamba model'}\n\n"
        + (f"{release['description'][:1].upper()}{release['description'][1:]}.\n\n"
           if release.get("description") else "")
        + "A character-level bidirectional Mamba DNA language model written by genomamba "
        f"(model format {config['format']} v{config['format_version']}).\n\n"
        f"| | |\n|---|---|\n{table}\n\n"
        + (_release_sections(release) if release else "")
        + "## Loading\n\n```python\nfrom genomamba.model_directory import from_pretrained\n"
        f"model = from_pretrained(\"{where}\")\n```\n\n"
        + (f"On the command line: `genomamba embed {where} seqs.fa -o emb.parquet`.\n\n" if release else "")
        + "Inputs are right-padded token ids from `genomamba.alphabet` with an attention mask or lengths.\n"
        "With Hugging Face transformers, importing `genomamba.hf` registers genomamba's classes\n"
        "(no `trust_remote_code`):\n\n"
        "```python\nimport genomamba.hf  # registers the genomamba model type with the Auto classes\n"
        "from transformers import AutoModel\n"
        "model = AutoModel.from_pretrained(\"path/to/this/directory\")\n```\n\n"
        "Files: `config.json` (architecture, alphabet, provenance), `model.safetensors`\n"
        "(weights; loading never unpickles).\n\n"
        "## Intended use and limits\n\n"
        "Research on DNA sequence modelling. Predictions are only as good as the training data named above;\n"
        "check them against held-out data for your organism and task before relying on them.\n"
        "The terms of use of the weights follow from that training data (genomamba's code is Apache-2.0)"
        + (";\nno licence was recorded when the model was saved, so the metadata says `other`.\n"
           if meta["license"] == "other" else f": recorded as `{meta['license']}`.\n")
    )


def _release_sections(release: dict) -> str:
    """The card's "Training" and "Benchmark" sections of a shipped model (see :func:`model_card`)."""
    data, compute = release.get("training_data") or {}, release.get("compute") or {}
    hours = compute.get("hours")
    lines = [
        "## Training\n",
        f"- data: `{data.get('corpus_manifest') or 'not recorded'}` (sha256 "
        f"`{data.get('corpus_manifest_sha256') or 'not recorded'}`)"
        + (f": {', '.join(data['species'])}" if data.get("species") else ""),
        f"- tokens seen: {release['tokens_seen']:,} in {release.get('steps', 0):,} steps"
        if isinstance(release.get("tokens_seen"), int) else "- tokens seen: not recorded",
        f"- compute: {compute.get('device') or 'device not recorded'}, "
        + (f"{hours:.2f} hours of training" if isinstance(hours, (int, float)) else "time not recorded"),
        "",
        "Masked-LM loss on held-out sequence of each species (never trained on), at the last step:\n",
    ]
    validation = release.get("validation") or []
    if validation:
        lines += ["| held-out set | species | crop length | loss | perplexity | accuracy |",
                  "|---|---|---:|---:|---:|---:|"]
        lines += [f"| {v['set']} | {v.get('species') or '-'} | {v['seq_len']:,} | {v['loss']:.4f} | "
                  f"{v['perplexity']:.3f} | {v['accuracy']:.3f} |" for v in validation]
    else:
        lines.append("not recorded (the run had no validation data)")
    bench = release.get("benchmark") or {}
    lines += ["", "## Benchmark (development suite)\n"]
    if bench.get("table"):
        lines += [f"From `{bench.get('source')}` (sha256 `{bench.get('sha256')}`):\n", bench["table"].strip()]
    else:
        lines.append("Not measured for this release.")
    return "\n".join(lines) + "\n\n"
