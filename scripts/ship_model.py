#!/usr/bin/env python3
"""Ship a trained model with the package: a pretraining run -> genomamba/pretrained/NAME + its pins.

    .venv/bin/python scripts/ship_model.py RUN_DIR --name genomamba-small-1k \\
        --corpus-manifest data_manifests/pretrain_corpus.yaml --device "1x NVIDIA H100 80GB" \\
        --results bench/results.md

RUN_DIR is what ``genomamba pretrain`` wrote (or its ``model/``): the model is read from
``RUN_DIR/model``, the training record from ``RUN_DIR/metrics.jsonl`` and the held-out losses from
``RUN_DIR/val_metrics.jsonl`` (either may be xz-compressed, as ``scripts/pack_corpus.py take-back``
carries them). The script

1. loads the model and writes it again as ``REGISTRY/NAME`` with its weight matrices in bf16
   (``save_pretrained(weights_dtype=torch.bfloat16)``; vectors and ``A_log`` stay float32), its
   provenance kept and a ``release`` entry added, from which the model card (README.md) gives the
   training data (the corpus manifest and its sha256, the species trained on), the tokens seen,
   the compute (``--device``; hours measured from ``metrics.jsonl``'s ``elapsed_s``, summed over
   the run's jobs, unless ``--hours``), the validation loss per species at the last step and the
   development suite's benchmark table (``--results``: a ``genomamba benchmark`` results.md);
2. checks that the bf16 model's logits stay within bf16 rounding of the trained model's;
3. pins the sha256 of each file in ``REGISTRY/models.json`` (written atomically; an entry of the
   same name, such as a planned one, is replaced in place) and checks that the name now resolves.

``--registry`` (default: the package's own ``genomamba/pretrained``) lets tests ship into a
temporary folder. Nothing is written when a step before the last fails; NAME must not exist yet
unless ``--overwrite``. Exit status: 0 shipped; 1 a usage or run problem (the message says what);
65 a model directory that cannot be read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import sys
import tempfile
from pathlib import Path

import torch
import yaml

from genomamba import pretrained
from genomamba.alphabet import ACGT_IDS
from genomamba.errors import GenomambaError
from genomamba.io.atomic import replacing
from genomamba.model_directory import from_pretrained, read_config, save_pretrained

REPO = Path(__file__).resolve().parents[1]
#: Above this, the wheel's ~50 MB budget (issue 18) is at risk: said loudly.
WHEEL_BUDGET_BYTES = 45 * 1024 * 1024
#: Largest logit difference of the bf16 model, relative to the largest logit, that ships. bf16
#: keeps 8 bits of mantissa (relative rounding up to 2**-9 = 2e-3 a weight); the layers compound
#: it a little. A larger difference means a tensor that bf16 cannot hold (see _KEPT_NAMES).
MAX_ROUND_TRIP_ERROR = 2e-2


class ShipError(Exception):
    """A run that cannot be shipped as asked; the message says what to do."""


def ship(run: str | Path, name: str, *, description: str | None = None, corpus_manifest: str | None = None,
         device: str | None = None, hours: float | None = None, results: str | None = None,
         license: str | None = None, registry: str | Path | None = None, overwrite: bool = False,
         log=print) -> Path:
    """Ship the model of ``run`` as ``name`` into ``registry`` (see the module docstring); returns
    the shipped directory.

    Raises:
        ShipError: an invalid name, a run without model/ or metrics.jsonl, an existing model
            without ``overwrite``, a description neither given nor registered.
        ModelDirectoryError: the run's model cannot be read.
    """
    registry = Path(registry) if registry is not None else pretrained.REGISTRY
    run, model_dir = _run_and_model(Path(run))
    if not pretrained.NAME_PATTERN.fullmatch(name):
        raise ShipError(f"{name!r} is not a model name: letters, digits, '.', '_' and '-' only")
    models = pretrained.read_manifest(registry)
    target = registry / name
    if (target.exists() or (name in models and models[name].shipped)) and not overwrite:
        raise ShipError(f"{name} is already shipped in {registry}; pass --overwrite to replace it")
    description = description or (models[name].description if name in models else None)
    if not description:
        raise ShipError(f"{name} is not registered yet: give --description")

    config = read_config(model_dir)
    model = from_pretrained(model_dir)
    steps, tokens, measured_hours = _training_record(run)
    species = _species(corpus_manifest)
    trained_on = [Path(d).name for d in ((config["provenance"].get("pretrain") or {}).get("config") or {})
                  .get("data", [])]
    release = {
        "name": name,
        "description": description,
        "training_data": {
            "corpus_manifest": _shown_path(corpus_manifest),
            "corpus_manifest_sha256": _sha256(corpus_manifest) if corpus_manifest else None,
            "species": [species.get(g, g) for g in trained_on],
        },
        "tokens_seen": tokens,
        "steps": steps,
        "compute": {"device": device, "hours": round(hours if hours is not None else measured_hours, 3)},
        "validation": _validation(run, species),
        "benchmark": _benchmark(results),
    }
    provenance = {**config["provenance"], "release": release}
    if license:
        provenance["license"] = license

    with tempfile.TemporaryDirectory() as tmp:  # checked before anything goes into the registry
        trial = save_pretrained(model, Path(tmp) / name, provenance=provenance, weights_dtype=torch.bfloat16)
        error = _round_trip_error(model, from_pretrained(trial))
    log(f"bf16 round trip: largest logit difference {error:.2e} of the logits' scale")
    if error > MAX_ROUND_TRIP_ERROR:
        raise ShipError(f"the bf16 model's logits differ from the trained model's by {error:.2e} of their "
                        f"scale (more than {MAX_ROUND_TRIP_ERROR}); nothing was shipped")
    shipped = save_pretrained(model, target, provenance=provenance, weights_dtype=torch.bfloat16,
                              overwrite=overwrite)

    files = {p.name: pretrained.file_sha256(p) for p in sorted(shipped.iterdir()) if p.is_file()}
    card = {
        "num_parameters": config["num_parameters"],
        "weights_dtype": read_config(shipped)["provenance"]["weights_dtype"],
        "training_data_manifest_sha256": config["provenance"].get("training_data_manifest_sha256"),
        "corpus_manifest_sha256": release["training_data"]["corpus_manifest_sha256"],
        "tokens_seen": tokens,
        "steps": steps,
        "compute": release["compute"],
        "validation_loss": {f"{v['set']}@{v['seq_len']}": round(v["loss"], 4) for v in release["validation"]},
    }
    preset = config["architecture"].get("preset")
    models[name] = pretrained.RegisteredModel(name, description, preset, files, card)
    with replacing(registry / pretrained.MANIFEST_FILE) as tmp:
        tmp.write_text(pretrained.manifest_text(models), encoding="utf-8")
    pretrained.shipped_directory(name, registry)  # every pin checked, as a user's load will
    size = sum(p.stat().st_size for p in shipped.iterdir())
    total = sum((registry / m.name / f).stat().st_size for m in models.values() for f in m.files)
    log(f"shipped {name}: {shipped} ({size / 2**20:.1f} MiB; {len(files)} files pinned in "
        f"{registry / pretrained.MANIFEST_FILE}); the registry holds {total / 2**20:.1f} MiB")
    if total > WHEEL_BUDGET_BYTES:
        log(f"WARNING: {total / 2**20:.1f} MiB of shipped models puts the wheel near or over its ~50 MB "
            "budget (issue 18)")
    return shipped


def _run_and_model(path: Path) -> tuple[Path, Path]:
    """(run directory, its model directory) from either of them."""
    if (path / "model").is_dir():
        return path, path / "model"
    if (path / "config.json").is_file() and path.name == "model":
        return path.parent, path
    raise ShipError(f"{path} is neither a pretraining run directory (with model/) nor its model/")


def _read_jsonl(run: Path, name: str) -> list[dict] | None:
    """The records of ``run/name`` or ``run/name.xz``; None when neither exists."""
    if (run / name).is_file():
        text = (run / name).read_text(encoding="utf-8")
    elif (run / f"{name}.xz").is_file():
        text = lzma.decompress((run / f"{name}.xz").read_bytes()).decode("utf-8")
    else:
        return None
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _training_record(run: Path) -> tuple[int, int, float]:
    """(steps, tokens trained on (padding excluded), hours of training) from ``metrics.jsonl``. Each
    job's ``elapsed_s`` counts from its own start, so the hours are the sum of each job's last value."""
    records = _read_jsonl(run, "metrics.jsonl")
    if not records:
        raise ShipError(f"{run}: no metrics.jsonl (or metrics.jsonl.xz) with records: is it a pretraining "
                        "run?")
    seconds, last = 0.0, 0.0
    for record in records:
        elapsed = float(record.get("elapsed_s", 0.0))
        if elapsed < last:  # a new job (a resume) started its clock again
            seconds += last
        last = elapsed
    return int(records[-1]["step"]), int(sum(r.get("tokens", 0) for r in records)), (seconds + last) / 3600


def _validation(run: Path, species: dict[str, str]) -> list[dict]:
    """The records of ``val_metrics.jsonl`` at its last step, each with the species of its set."""
    records = _read_jsonl(run, "val_metrics.jsonl") or []
    if not records:
        return []
    last = max(r["step"] for r in records)
    keep = ("step", "set", "seq_len", "loss", "perplexity", "accuracy", "masked_tokens")
    return [{**{k: r[k] for k in keep if k in r}, "species": species.get(r["set"])}
            for r in records if r["step"] == last]


def _species(corpus_manifest: str | None) -> dict[str, str]:
    """Genome name -> species of a data manifest (``genomes: [{name, species}]``); {} without one."""
    if corpus_manifest is None:
        return {}
    try:
        data = yaml.safe_load(Path(corpus_manifest).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ShipError(f"cannot read the corpus manifest {corpus_manifest}: {exc}") from exc
    return {g["name"]: g.get("species") or g["name"] for g in data.get("genomes", []) if "name" in g}


def _benchmark(results: str | None) -> dict | None:
    if results is None:
        return None
    try:
        table = Path(results).read_text(encoding="utf-8")
    except OSError as exc:
        raise ShipError(f"cannot read the benchmark results {results}: {exc}") from exc
    return {"source": _shown_path(results), "sha256": _sha256(results), "table": table}


def _shown_path(path: str | None) -> str | None:
    """``path`` relative to the repository when it lies inside it (as the card shows it), else as given."""
    if path is None:
        return None
    try:
        return Path(path).resolve().relative_to(REPO).as_posix()
    except ValueError:
        return str(path)


def _sha256(path: str | Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise ShipError(f"cannot read {path}: {exc}") from exc


@torch.no_grad()
def _round_trip_error(trained: torch.nn.Module, shipped: torch.nn.Module) -> float:
    """Largest |logit difference| between the two models on fixed random sequences, relative to the
    trained model's largest |logit| (each model's head, masks none)."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.from_numpy(ACGT_IDS)[torch.randint(0, 4, (2, 256), generator=generator)].long()
    want, got = trained(ids).logits.float(), shipped(ids).logits.float()
    return float((want - got).abs().max() / want.abs().max().clamp_min(1e-12))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a `genomamba pretrain` run directory (or its model/)")
    parser.add_argument("--name", required=True, help="the name users load it by, e.g. genomamba-small-1k")
    parser.add_argument("--description",
                        help="one line for the card and doctor [default: the registered one]")
    parser.add_argument("--corpus-manifest", help="the data manifest of the corpus, e.g. "
                                                  "data_manifests/pretrain_corpus.yaml")
    parser.add_argument("--device", help="what it was trained on, e.g. '1x NVIDIA H100 80GB'")
    parser.add_argument("--hours", type=float, help="training hours [default: measured from metrics.jsonl]")
    parser.add_argument("--results", help="the development suite's results.md (genomamba benchmark)")
    parser.add_argument("--license", help="SPDX licence of the weights for the card [default: other]")
    parser.add_argument("--registry", help=f"the registry folder [default: {pretrained.REGISTRY}]")
    parser.add_argument("--overwrite", action="store_true", help="replace a shipped model of this name")
    args = parser.parse_args(argv)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    try:
        ship(args.run, args.name, description=args.description, corpus_manifest=args.corpus_manifest,
             device=args.device, hours=args.hours, results=args.results, license=args.license,
             registry=args.registry, overwrite=args.overwrite, log=log)
    except ShipError as exc:
        log(f"error: {exc}")
        return 1
    except GenomambaError as exc:
        log(f"error: {exc}")
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
