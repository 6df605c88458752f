"""Shared pieces of the model and training benchmarks (bench_model.py, bench_train.py).

Run information (device, versions, commit, date), masked-LM batches, the optimiser both models
get, a step timer that reports out-of-memory instead of dying, and incremental JSON writing (a run
cut short by a time limit still leaves every finished measurement on disk).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from genomamba.alphabet import ACGT_IDS
from genomamba.train.masking import bert_mask

GIB = 2**30


def git_commit() -> str | None:
    """Short commit of the working tree (``+dirty`` when it has changes), None without git."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("+dirty" if dirty else "")


def run_info(device: torch.device, commit: str | None = None) -> dict:
    """What a benchmark record needs to be read later: machine, versions, commit, date (UTC)."""
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    from genomamba.ops import backend_report

    info = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit or os.environ.get("GENOMAMBA_COMMIT") or git_commit(),
        "device": (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else platform.processor() or "cpu"),
        "device_type": device.type,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": triton_version,
        "python": sys.version.split()[0],
        "scan_backend": backend_report()[device.type]["backend"],
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu_memory_gib"] = round(props.total_memory / GIB, 2)
    return info


def mlm_batch(batch: int, length: int, seed: int, device: torch.device):
    """Random A/C/G/T crops, BERT-masked (15%; 80/10/10) with genomamba's own masking.

    Returns ``(inputs, labels)``: int64 tensors (batch, length) on ``device``; labels are -100 at
    positions that do not count. Both models of a comparison get these same tensors.
    """
    rng = np.random.default_rng(seed)
    ids = rng.choice(ACGT_IDS, size=(batch, length))
    inputs, labels = bert_mask(ids, rng)
    return torch.from_numpy(inputs).to(device), torch.from_numpy(labels).to(device)


def make_adamw(params, lr: float, device: torch.device) -> tuple[torch.optim.Optimizer, str]:
    """AdamW, fused where this torch supports it on ``device`` (else foreach); returns (opt, kind)."""
    for kind in ("fused", "foreach"):
        try:
            opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.1, **{kind: True})
            return opt, kind
        except (RuntimeError, ValueError, TypeError):
            continue
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.1), "single-tensor"


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA when ``enabled``; fp32 (no autocast) otherwise, as genomamba pretrain does."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    # extensions and Triton launches sometimes surface the allocator failure as a RuntimeError
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[], None], warmup: int, steps: int, device: torch.device) -> dict:
    """Run ``warmup`` untimed then ``steps`` timed calls of ``step``.

    Returns ``{"status": "ok", "step_s": [...], "median_s", "total_s", "peak_bytes", "peak_gib",
    "resident_gib"}`` (peak = ``torch.cuda.max_memory_allocated`` over the timed steps, reset after
    warm-up; resident = allocated before them: weights, optimiser state, inputs), or
    ``{"status": "oom", "error": ...}`` when the allocator gives up. Other exceptions propagate.
    """
    failure = None
    try:
        for _ in range(warmup):
            step()
        _sync(device)
        resident = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(steps):
            _sync(device)
            tic = time.perf_counter()
            step()
            _sync(device)
            times.append(time.perf_counter() - tic)
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    except Exception as exc:  # noqa: BLE001 - only OOM is reported, the rest re-raised below
        if not is_oom(exc):
            raise
        failure = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
    # outside the except block, so the traceback (and the activations its frames hold) is gone
    free_memory(device)
    if failure is not None:
        return {"status": "oom", "error": failure}
    return {
        "status": "ok",
        "step_s": [round(t, 5) for t in times],
        "median_s": statistics.median(times),
        "total_s": sum(times),
        "peak_bytes": peak,
        "peak_gib": None if peak is None else round(peak / GIB, 3),
        "resident_gib": round(resident / GIB, 3),
    }


class Deadline:
    """Wall-clock budget for a whole run: measurements past it are skipped and say so."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def passed(self) -> bool:
        return self.seconds is not None and self.elapsed() > self.seconds


def write_json(path: str | os.PathLike | None, payload: dict) -> None:
    """Write ``payload`` atomically (temp file + rename); no-op without a path."""
    if not path:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)


def fmt(value, spec: str = ".3g") -> str:
    """A table cell: numbers formatted, None as empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


# -- the models compared -----------------------------------------------------------------------------

#: name -> what is built. "ours*" are genomamba presets (``rc``/``ckpt`` None = the preset's own
#: setting; base-131k: rc_strategy "ph", gradient checkpointing on); "peer*" the Caduceus-PS peer
#: of caduceus_peer.py sized like the preset. Caduceus has no gradient checkpointing; "peer-ckpt"
#: wraps each of its blocks in torch.utils.checkpoint, as ours does, for a like-for-like number.
VARIANTS: dict[str, dict] = {
    "ours": {"kind": "ours", "rc": None, "ckpt": None},
    "ours-nockpt": {"kind": "ours", "rc": None, "ckpt": False},
    "ours-ps": {"kind": "ours", "rc": "ps", "ckpt": None},
    "ours-ps-nockpt": {"kind": "ours", "rc": "ps", "ckpt": False},
    # the same model with a structured A (mixer.decay: ladder, scalar; docs/model.md)
    "ours-ladder": {"kind": "ours", "rc": None, "ckpt": None, "decay": "ladder"},
    "ours-ladder-nockpt": {"kind": "ours", "rc": None, "ckpt": False, "decay": "ladder"},
    "ours-scalar": {"kind": "ours", "rc": None, "ckpt": None, "decay": "scalar"},
    "peer": {"kind": "peer", "ckpt": False, "strands": 2},
    "peer-ckpt": {"kind": "peer", "ckpt": True, "strands": 2},
    "peer-ph": {"kind": "peer", "ckpt": False, "strands": 1},
    "peer-ph-ckpt": {"kind": "peer", "ckpt": True, "strands": 1},
}


def build_variant(name: str, preset_name: str, device: torch.device, peer_lib=None, peer_norm: str = "torch",
                  peer_tie_lm_head: bool = False):
    """Build one compared model in training mode on ``device``.

    Returns ``(model, loss_fn, meta)``: ``loss_fn(inputs, labels)`` is the scalar masked-LM loss
    (mean over labels != -100) and ``meta`` describes the model for the JSON record.

    Raises:
        KeyError: unknown variant name; RuntimeError: a peer variant without ``peer_lib``.
    """
    from genomamba.model import build_model, preset

    spec = VARIANTS[name]
    if spec["kind"] == "ours":
        overrides = {}
        if spec["rc"] is not None:
            overrides["rc_strategy"] = spec["rc"]
        if spec["ckpt"] is not None:
            overrides["gradient_checkpointing"] = spec["ckpt"]
        if spec.get("decay"):
            overrides["mixer"] = {"decay": spec["decay"]}
        model = build_model(preset_name, **overrides).to(device).train()

        def loss_fn(inputs, labels):
            return model(inputs, labels=labels).loss

        meta = {"model": f"genomamba {preset_name}", "rc_strategy": model.config.rc_strategy,
                "gradient_checkpointing": model.config.gradient_checkpointing,
                "decay": model.config.mixer.decay}
    else:
        if peer_lib is None:
            raise RuntimeError("peer variant requested without mamba_ssm (give --peer-sdist)")
        from caduceus_peer import build_peer, peer_config_from

        cfg = peer_config_from(preset(preset_name), norm=peer_norm, tie_lm_head=peer_tie_lm_head,
                               gradient_checkpointing=spec["ckpt"], strands=spec["strands"])
        model = build_peer(cfg, peer_lib, device).train()

        def loss_fn(inputs, labels):
            return model.loss(model(inputs), labels)

        kind = "Caduceus-PS" if cfg.strands == 2 else "Caduceus-Ph (one strand)"
        meta = {"model": f"{kind} peer ({preset_name} sizes)",
                "rc_strategy": "ps (Caduceus RCPS)" if cfg.strands == 2 else "ph (one strand)",
                "gradient_checkpointing": cfg.gradient_checkpointing, "peer_norm": cfg.norm,
                "peer_scan": peer_lib.scan, "peer_fused_path": peer_lib.fused_path}
    meta["parameters"] = sum(p.numel() for p in model.parameters())
    return model, loss_fn, meta


def add_common_arguments(ap) -> None:
    """The command-line options both benchmarks share (device, precision, budget, output, peer)."""
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--no-autocast", action="store_true", help="fp32 (otherwise bf16 autocast on CUDA)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="tiny preset and sizes: checks the script runs")
    ap.add_argument("--deadline-s", type=float, default=540.0,
                    help="skip the measurements that would start after this many seconds")
    ap.add_argument("--commit", default=None, help="commit to record (default: git, when there is one)")
    ap.add_argument("--json", default=None, help="write the results here (rewritten after each measurement)")
    ap.add_argument("--peer-sdist", default=None,
                    help="mamba-ssm 2.3.2.post1 sdist (.carry/...); without it the peer is skipped")
    ap.add_argument("--peer-conv-sdist", default=None,
                    help="causal-conv1d 1.5.2 sdist: the peer then takes mamba_ssm's fused path, as "
                         "Caduceus does; without it, the non-fused path")
    ap.add_argument("--peer-build-dir", default="/tmp/peer_build",
                    help="where the peer's CUDA scan is compiled (reused when already built)")
    ap.add_argument("--peer-norm", choices=("auto", "torch", "triton"), default="auto")
    ap.add_argument("--peer-tie-lm-head", action="store_true")
    ap.add_argument("--wheels", default=str(Path(__file__).resolve().parents[1] / ".whl"),
                    help="folder with the einops/packaging wheels mamba_ssm's Mamba needs")


def apply_smoke(ap, args, smoke: dict) -> None:
    """With ``--smoke``, replace the options still at their defaults by the smoke values."""
    if args.smoke:
        for key, value in smoke.items():
            if ap.get_default(key) == getattr(args, key):
                setattr(args, key, value)


def load_peer_lib(args, device: torch.device) -> tuple[object, str, dict]:
    """Load mamba_ssm's Mamba when a peer variant was asked for; returns (lib or None, norm, info)."""
    info: dict = {"peer": False}
    if not any(VARIANTS[v]["kind"] == "peer" for v in args.variants):
        return None, "torch", info
    if not args.peer_sdist:
        info["peer_note"] = "no --peer-sdist: peer skipped"
        return None, "torch", info
    from caduceus_peer import load_mamba, resolve_norm

    lib = load_mamba(args.peer_sdist, args.peer_build_dir, device, args.wheels, args.peer_conv_sdist)
    if lib is None:
        info["peer_note"] = "mamba_ssm could not be built or imported (see stderr)"
        return None, "torch", info
    norm, note = resolve_norm(args.peer_norm, lib, device)
    info.update(peer=True, peer_scan=lib.scan, peer_fused_path=lib.fused_path, peer_norm=norm,
                peer_norm_note=note, peer_causal_conv1d=lib.fused_path,
                peer_path_note=("mamba_ssm Mamba with causal_conv1d: the fused mamba_inner_fn (conv, "
                                "projections and CUDA scan in one autograd function), as Caduceus trains"
                                if lib.fused_path else
                                "mamba_ssm Mamba without causal_conv1d: nn.Conv1d + SiLU, x_proj/dt_proj "
                                "matmuls, selective_scan_fn (CUDA); not the fused mamba_inner_fn"))
    return lib, norm, info
