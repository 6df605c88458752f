"""A Caduceus-equivalent peer model built from mamba_ssm 2.3.2.post1's ``Mamba`` module, for benchmarks.

What kuleshov-group/caduceus builds for its 131k models (Caduceus-PS, masked LM), rebuilt here
from the same parts so that it runs mamba_ssm's own layer and CUDA scan:

* each layer's mixer is a BiMamba wrapper of two ``mamba_ssm.modules.mamba_simple.Mamba``
  modules: the forward one on the sequence, the reverse one on the sequence flipped along its
  length, its output flipped back; the two are added. ``in_proj``/``out_proj`` are the same
  parameters in both directions (Caduceus ties them by default);
* pre-norm residual blocks with RMSNorm, the residual stream in fp32;
* reverse-complement parameter sharing (PS): hidden states have ``2 * d_model`` channels, the
  first half for x, the second half for RC(x) stored flipped along length *and* channels, as
  Caduceus' RCPS modules store it; every norm and mixer is applied to the first half and to the
  re-flipped second half with the same weights; the LM head adds the RC half's logits with the
  vocabulary complemented, so the logits are RC-equivariant.

mamba_ssm's ``Mamba`` takes its fused path (``mamba_inner_fn``: conv, projections, scan and
``out_proj`` in one autograd function that recomputes rather than saves, what Caduceus trains
with) only when the ``causal_conv1d`` package imports. ``--peer-conv-sdist`` compiles it from its
sdist (mamba_ssm_peer.load_causal_conv1d); without it the peer runs the other path: ``nn.Conv1d``
+ SiLU, ``x_proj``/``dt_proj`` as matmuls and ``selective_scan_fn`` (mamba_ssm's CUDA scan). The
benchmarks record which as ``fused_path``.

Norm: ``--peer-norm triton`` uses mamba_ssm's Triton ``rms_norm_fn`` with the residual add fused
(Caduceus' training config: ``rms_norm: true, fused_add_norm: true``); ``torch`` a plain fp32
RMSNorm; ``auto`` (default) Triton on CUDA when it imports and runs, else torch.

Loading without installing mamba_ssm (its code never enters this repository) is
mamba_ssm_import.py's job: the sdist is unpacked, ``mamba_ssm`` registered as a bare package (its
``__init__`` never runs) and ``selective_scan_cuda`` injected into ``sys.modules``: the module
mamba_ssm_peer.load_peer compiles on CUDA, or on CPU a stand-in computing the same ``fwd``/``bwd``
with genomamba's sequential reference scan (so the peer's wiring can be checked without a GPU;
its timings mean nothing). Third-party imports of
that path: ``einops`` and ``packaging`` (pure Python; besides torch and triton). The GPU machine
has no internet: wheels downloaded here with::

    pip download --no-deps -d .whl einops packaging

are put on ``sys.path`` as zip files when the modules do not import (``--wheels DIR``, default
``.whl``; a wheel of pure Python imports from its zip). Installing them instead also works:
``python3 -m pip install --no-index --no-deps --target /tmp/peer_site .whl/einops-*.whl`` and
``PYTHONPATH=/tmp/peer_site``.

Usage::

    # GPU: build the scan (~3 min, cached in the build dir), count parameters, check the peer
    # (RC equivariance in fp32, a bf16 forward+backward at 4,096 bases)
    python3 benchmarks/caduceus_peer.py --peer-sdist .carry/mamba_ssm-2.3.2.post1.tar.gz \
        --peer-build-dir /tmp/peer_build --json $OUT/peer.json
    # CPU: the same checks with the stand-in scan, tiny lengths
    python3 benchmarks/caduceus_peer.py --device cpu --peer-sdist .carry/mamba_ssm-2.3.2.post1.tar.gz \
        --peer-build-dir /tmp/peer_src

Parameter count of the ``base-131k``-sized peer: 7,729,408, the number the training issue quotes.
Per layer (d_model 256, d_inner 512, d_state 16, dt_rank 16, conv 4): in_proj 262,144 + out_proj
131,072 (shared) + two directions x (conv 2,560 + x_proj 24,576 + dt_proj 8,704 + A_log 8,192 +
D 512 = 44,544) + RMSNorm 256 = 482,560; x 16 layers + final norm 256 = 7,721,216, the same as
genomamba ``base-131k``. The rest is the vocabulary: Caduceus pads its vocabulary to a multiple
of 8 (``pad_vocab_size_multiple: 8``), so genomamba's 10 tokens become 16, and 7,729,408 needs an
embedding *and* a separate LM decoder of 16 x 256 each (8,192). Caduceus' HF model ties its
decoder to the embedding, which would count 4,096 fewer (7,725,312; ``--peer-tie-lm-head``). The
default here reproduces the issue's count; the difference costs nothing measurable (a 16 x 256
matrix). genomamba ``base-131k`` has 7,723,786: 10 x 256 tied embedding + a 10-entry MLM bias.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO_ROOT = Path(__file__).resolve().parents[1]
PEER_PARAMETERS = 7_729_408  # the count the training issue quotes for its peer

from mamba_ssm_import import MambaLib, load_mamba  # noqa: E402, F401  (load_mamba: for the benchmarks)

# -- the peer model -------------------------------------------------------------------------------


@dataclass
class PeerConfig:
    d_model: int = 256
    n_layer: int = 16
    vocab_size: int = 10  # before padding
    pad_vocab_multiple: int = 8  # Caduceus' pad_vocab_size_multiple
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    norm_eps: float = 1e-5
    tie_lm_head: bool = False  # see the module docstring: False reproduces the count
    gradient_checkpointing: bool = False  # Caduceus has none; the benchmarks add it for fairness
    norm: str = "torch"  # "torch" | "triton"
    #: 2 = Caduceus-PS (both strands through shared weights); 1 = the BiMamba on one strand, as
    #: Caduceus-Ph trains (RC augmentation in the data, strands conjoined only at inference)
    strands: int = 2

    @property
    def padded_vocab(self) -> int:
        m = self.pad_vocab_multiple
        return math.ceil(self.vocab_size / m) * m


def peer_config_from(model_config, **changes) -> PeerConfig:
    """The peer sized like a genomamba :class:`~genomamba.model.config.ModelConfig`."""
    mixer = model_config.mixer
    cfg = PeerConfig(
        d_model=model_config.d_model, n_layer=model_config.n_layer, vocab_size=model_config.vocab_size,
        d_state=mixer.d_state, d_conv=mixer.d_conv, expand=mixer.expand, norm_eps=model_config.norm_eps,
    )
    for key, value in changes.items():
        setattr(cfg, key, value)
    return cfg


def _rc(t: torch.Tensor) -> torch.Tensor:
    """Caduceus' RC of a hidden state half: flip length and channels (a copy, as in Caduceus)."""
    return torch.flip(t, dims=[-2, -1])


class AddRMSNorm(nn.Module):
    """``(x, residual) -> (rmsnorm(x + residual), x + residual)``; the sum kept in fp32.

    ``impl="triton"`` calls mamba_ssm's fused Triton kernel, ``"torch"`` computes it in fp32.
    The normalised output has ``x``'s dtype in both (what the Triton kernel returns).
    """

    def __init__(self, d: int, eps: float, impl: str, rms_norm_fn=None):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps, self.impl, self._fn = eps, impl, rms_norm_fn

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None):
        if self.impl == "triton":
            return self._fn(x, self.weight, None, residual=residual, eps=self.eps, prenorm=True,
                            residual_in_fp32=True)
        res = x.float() if residual is None else x.float() + residual.float()
        y = res * torch.rsqrt(res.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.float()
        return y.to(x.dtype), res


class BiMamba(nn.Module):
    """Forward Mamba + reverse Mamba on the length-flipped input (flipped back), added."""

    def __init__(self, Mamba: type, cfg: PeerConfig):
        super().__init__()
        kw = dict(d_model=cfg.d_model, d_state=cfg.d_state, d_conv=cfg.d_conv, expand=cfg.expand)
        self.mamba_fwd = Mamba(**kw)
        self.mamba_rev = Mamba(**kw)
        # one Parameter object in both modules: counted, updated and decayed once
        self.mamba_rev.in_proj.weight = self.mamba_fwd.in_proj.weight
        self.mamba_rev.in_proj.bias = self.mamba_fwd.in_proj.bias
        self.mamba_rev.out_proj.weight = self.mamba_fwd.out_proj.weight
        self.mamba_rev.out_proj.bias = self.mamba_fwd.out_proj.bias

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.mamba_fwd(h) + self.mamba_rev(h.flip(1)).flip(1)


def _per_strand(fn, d: int, hidden: torch.Tensor, *more: torch.Tensor | None):
    """Apply ``fn`` to the x half and to the re-flipped RC half of PS tensors, re-assemble (outputs tuple)."""
    fwd = fn(hidden[..., :d], *(None if m is None else m[..., :d] for m in more))
    rc = fn(_rc(hidden[..., d:]), *(None if m is None else _rc(m[..., d:]) for m in more))
    fwd = fwd if isinstance(fwd, tuple) else (fwd,)
    rc = rc if isinstance(rc, tuple) else (rc,)
    return tuple(torch.cat([a, _rc(b)], dim=-1) for a, b in zip(fwd, rc, strict=True))


class PeerBlock(nn.Module):
    """``(hidden, residual) -> (mixer(norm(hidden + residual)), hidden + residual)`` on both strands."""

    def __init__(self, Mamba: type, cfg: PeerConfig, rms_norm_fn=None):
        super().__init__()
        self.d = cfg.d_model
        self.two_strands = cfg.strands == 2
        self.norm = AddRMSNorm(cfg.d_model, cfg.norm_eps, cfg.norm, rms_norm_fn)
        self.mixer = BiMamba(Mamba, cfg)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor | None):
        if not self.two_strands:
            normed, residual = self.norm(hidden, residual)
            return self.mixer(normed), residual
        normed, residual = _per_strand(self.norm, self.d, hidden, residual)
        (out,) = _per_strand(self.mixer, self.d, normed)
        return out, residual


class CaduceusPeer(nn.Module):
    """RC-equivariant (parameter sharing) bidirectional Mamba masked LM, Caduceus-PS style.

    ``forward(input_ids (batch, L) int64) -> logits (batch, L, padded_vocab) fp32``;
    ``loss(logits, labels)`` = mean cross-entropy over labels != -100.
    """

    def __init__(self, cfg: PeerConfig, lib: MambaLib):
        super().__init__()
        from genomamba.model.rc import complement_table

        self.cfg = cfg
        V, d = cfg.padded_vocab, cfg.d_model
        self.register_buffer("complement", complement_table(V), persistent=False)
        self.embedding = nn.Embedding(V, d)
        self.layers = nn.ModuleList(PeerBlock(lib.Mamba, cfg, lib.rms_norm_fn) for _ in range(cfg.n_layer))
        self.norm_f = AddRMSNorm(d, cfg.norm_eps, cfg.norm, lib.rms_norm_fn)
        self.lm_head = nn.Linear(d, V, bias=False)
        if cfg.tie_lm_head:
            self.lm_head.weight = self.embedding.weight
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        # Mamba's model-level init (as Caduceus applies it): embeddings N(0, 0.02), Linear biases 0
        # except dt_proj's, out_proj re-drawn kaiming-uniform / sqrt(n_layer). Speed does not
        # depend on it; it keeps the loss of a fresh peer sensible.
        for module in self.modules():
            if isinstance(module, nn.Linear) and module.bias is not None:
                if not getattr(module.bias, "_no_reinit", False):
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
        if not self.cfg.tie_lm_head:
            nn.init.normal_(self.lm_head.weight, std=0.02)
        for name, p in self.named_parameters():
            if name.endswith("out_proj.weight"):
                nn.init.kaiming_uniform_(p, a=math.sqrt(5))
                p /= math.sqrt(self.cfg.n_layer)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(batch, L) -> (batch, L, 2d): [emb(x), RC-stored emb(RC(x))]; (batch, L, d) on one strand."""
        if self.cfg.strands == 1:
            return self.embedding(input_ids)
        rc_ids = self.complement[torch.flip(input_ids, dims=[-1])]
        return torch.cat([self.embedding(input_ids), _rc(self.embedding(rc_ids))], dim=-1)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden, residual = self.embed(input_ids), None
        ckpt = self.cfg.gradient_checkpointing and torch.is_grad_enabled()
        for layer in self.layers:
            if ckpt:
                hidden, residual = checkpoint(layer, hidden, residual, use_reentrant=False)
            else:
                hidden, residual = layer(hidden, residual)
        w = self.lm_head.weight
        if self.cfg.strands == 1:
            return F.linear(self.norm_f(hidden, residual)[0], w).float()
        h, _ = _per_strand(self.norm_f, self.cfg.d_model, hidden, residual)
        d = self.cfg.d_model
        # the RC half predicts, at each position, the complement of the base there
        logits = F.linear(h[..., :d], w) + F.linear(torch.flip(h[..., d:], dims=[-1]), w[self.complement])
        return logits.float()

    @staticmethod
    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # shared Parameters once


def build_peer(cfg: PeerConfig, lib: MambaLib, device: torch.device) -> CaduceusPeer:
    if cfg.norm == "triton" and lib.rms_norm_fn is None:
        raise RuntimeError("mamba_ssm's Triton rms_norm_fn did not import")
    return CaduceusPeer(cfg, lib).to(device)


def resolve_norm(requested: str, lib: MambaLib, device: torch.device) -> tuple[str, str | None]:
    """Pick the peer's norm: ``auto`` tries mamba_ssm's Triton kernel on CUDA with a tiny fwd+bwd.

    Returns ``(norm, reason it is not triton or None)``.
    """
    if requested == "torch":
        return "torch", "asked for"
    if device.type != "cuda" or lib.rms_norm_fn is None:
        reason = "needs CUDA" if device.type != "cuda" else "rms_norm_fn did not import"
        if requested == "triton":
            raise RuntimeError(f"--peer-norm triton: {reason}")
        return "torch", reason
    try:
        norm = AddRMSNorm(64, 1e-5, "triton", lib.rms_norm_fn).to(device)
        x = torch.randn(2, 8, 64, device=device, requires_grad=True)
        y, res = norm(x, None)
        y2, _ = norm(x.to(torch.bfloat16), res)
        (y.sum() + y2.float().sum()).backward()
        torch.cuda.synchronize(device)
        return "triton", None
    except Exception as exc:  # noqa: BLE001 - any failure means "use the torch norm", recorded
        if requested == "triton":
            raise
        return "torch", f"Triton rms_norm_fn failed: {type(exc).__name__}: {exc}"


def rc_equivariance_error(model: CaduceusPeer, length: int, batch: int = 2, seed: int = 0) -> float:
    """max |logits(RC x)[i, v] - logits(x)[L-1-i, comp(v)]| over random A/C/G/T/N inputs (fp32, eval)."""
    from genomamba.alphabet import ACGT_IDS, N_ID

    device = model.embedding.weight.device
    g = torch.Generator().manual_seed(seed)
    table = torch.tensor(list(ACGT_IDS) + [N_ID])
    ids = table[torch.randint(0, 5, (batch, length), generator=g)].to(device)
    rc_ids = model.complement[ids.flip(-1)]
    with torch.no_grad():
        a = model(ids)
        b = model(rc_ids)
    expected = a.flip(1)[..., model.complement]
    return float((b - expected).abs().max() / a.abs().max().clamp(min=1e-12))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer-sdist", default=str(REPO_ROOT / ".carry/mamba_ssm-2.3.2.post1.tar.gz"))
    ap.add_argument("--peer-conv-sdist", default=None,
                    help="causal-conv1d 1.5.2 sdist: Mamba's fused path (mamba_ssm_peer.load_causal_conv1d)")
    ap.add_argument("--peer-build-dir", default="/tmp/peer_build")
    ap.add_argument("--peer-norm", choices=("auto", "torch", "triton"), default="auto")
    ap.add_argument("--peer-tie-lm-head", action="store_true")
    ap.add_argument("--preset", default="base-131k", help="genomamba preset the peer is sized like")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--length", type=int, default=None, help="check length (default 4096 cuda, 64 cpu)")
    ap.add_argument("--wheels", default=str(REPO_ROOT / ".whl"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from genomamba.model import build_model, preset

    device = torch.device(args.device)
    lib = load_mamba(args.peer_sdist, args.peer_build_dir, device, args.wheels, args.peer_conv_sdist)
    if lib is None:
        sys.exit(1)
    norm, norm_note = resolve_norm(args.peer_norm, lib, device)
    mcfg = preset(args.preset)
    ours = build_model(mcfg)
    cfg = peer_config_from(mcfg, norm=norm, tie_lm_head=args.peer_tie_lm_head)
    torch.manual_seed(0)
    peer = build_peer(cfg, lib, device)
    report = {
        "preset": args.preset, "device": str(device), "scan": lib.scan, "fused_path": lib.fused_path,
        "peer_norm": norm, "peer_norm_note": norm_note, "peer_config": asdict(cfg),
        "ours_parameters": ours.num_parameters(), "peer_parameters": peer.num_parameters(),
    }
    if args.preset == "base-131k" and not cfg.tie_lm_head:
        report["peer_parameters_match_issue"] = report["peer_parameters"] == PEER_PARAMETERS
    print(f"parameters: genomamba {args.preset} {report['ours_parameters']:,}; "
          f"Caduceus peer {report['peer_parameters']:,}", flush=True)

    length = args.length or (4096 if device.type == "cuda" else 64)
    # RC equivariance in fp32 (the CUDA scan keeps fp32 inputs in fp32): a wiring check
    peer.eval()
    report["rc_equivariance_rel_err"] = rc_equivariance_error(peer, length)
    peer.train()
    from bench_util import autocast, mlm_batch

    inputs, labels = mlm_batch(1, length, 0, device)
    with autocast(device, True):
        loss = peer.loss(peer(inputs), labels)
    loss.backward()
    grads = [p.grad for p in peer.parameters()]
    report["loss_at_init"] = loss.item()
    finite = [g is not None and bool(torch.isfinite(g).all()) for g in grads]
    report["all_parameters_have_finite_grads"] = all(finite)
    print(json.dumps(report, indent=2), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    ok = report["rc_equivariance_rel_err"] < (1e-3 if device.type == "cuda" else 1e-4)
    ok = ok and report["all_parameters_have_finite_grads"] and report.get("peer_parameters_match_issue", True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
