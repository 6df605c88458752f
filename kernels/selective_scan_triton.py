"""Launchers and autograd wrappers for the Triton selective scan.

Public functions follow the contract of ``genomamba.ops`` (DESIGN.md §2) minus ``backend``:

* :func:`selective_scan_triton` — one direction, ``reverse=True`` reads right to left in place;
* :func:`bidirectional_selective_scan_triton` — both directions summed, sharing the gate.

A direction's tensors travel together as a :class:`ScanTensors` (the contract's names), and so do
the gradients of those tensors.

Shapes: u, delta, z (batch, dim, length); A (dim, d_state); B, C (batch, d_state, length) or
(batch, groups, d_state, length); D, delta_bias (dim,); initial_state (batch, dim, d_state) fp32.
The state is fp32 throughout; y has u's dtype. The kernels live in scan_forward.py,
scan_backward.py and scan_segments.py; this module only plans launches and wires autograd.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import NamedTuple

import torch
import triton

from .scan_backward import _selective_scan_bwd_kernel
from .scan_forward import _selective_scan_fwd_kernel
from .scan_segments import _chain_segments_kernel

MAX_D_STATE = 256
#: The structures of A the kernels know (their DECAY constexpr is the index; scan_steps.py)
DECAYS = ("full", "ladder", "scalar")
#: Multiply-adds fused into FMAs, as every measurement in docs/benchmarks.md ran (Triton 3.6's
#: default). Stated explicitly because Triton announces that its default turns to unfused in 3.10,
#: which would add instructions and roundings to every step of the recurrences.
FP_FUSION = True
#: Overrides for plan_launch's choices and for fast_math (keys: fast_math, fwd_block_d, fwd_warps,
#: fwd_unroll, fwd_stages, state_block_d, state_unroll, state_stages, block_t, bwd_block_d,
#: bwd_block_t, bwd_warps, bwd_maxnreg, bwd_kept_fp32, min_programs_per_sm, programs_per_sm,
#: bwd_programs_per_sm, chain_stages), set by
#: benchmarks/tune_scan.py while it sweeps, or from the environment for a GPU the defaults were not
#: tuned on: GENOMAMBA_SCAN_TUNING='{"bwd_block_d": 8}'. Empty in normal use.
TUNING: dict[str, int | str] = {}


def _tuning_from_environment() -> dict[str, int | str]:
    raw = os.environ.get("GENOMAMBA_SCAN_TUNING", "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"GENOMAMBA_SCAN_TUNING is not valid JSON ({exc}): {raw!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"GENOMAMBA_SCAN_TUNING must be a JSON object of plan overrides, got {raw!r}")
    return value


TUNING.update(_tuning_from_environment())


def fast_math(device: torch.device) -> bool:
    """Whether the kernels use one-instruction PTX transcendentals (see fast_math.py).

    On NVIDIA GPUs, yes; under Triton's interpreter (CPU tensors), which cannot run inline PTX, and
    on other GPUs, Triton's portable functions. TUNING["fast_math"] = 0 turns it off for comparison.
    """
    if "fast_math" in TUNING:
        return bool(TUNING["fast_math"])
    return device.type == "cuda" and torch.version.hip is None


@dataclass(frozen=True)
class LaunchPlan:
    """How one pass of a scan is cut into programs: channel blocks x segments x batch rows.

    ``block_t`` is the spacing of the forward pass's state checkpoints; both passes must agree on it.
    ``tile_t`` (backward only) is the backward's sub-block: the positions whose states it keeps in
    scratch at once, a divisor of ``block_t``. ``programs`` (backward only) is the persistent grid.
    """

    block_d: int
    block_n: int
    block_t: int
    segments: int
    seg_len: int
    num_warps: int
    tile_t: int = 0
    #: forward only: positions whose loads are issued together
    unroll: int = 4
    programs: int = 0
    #: forward only: software pipelining of the per-position loop (Triton's ``num_stages``: loads
    #: are issued ``stages - 1`` loop iterations ahead, through shared memory); 1 = none. The
    #: backward prefetches one position ahead by hand (scan_backward.py).
    stages: int = 1
    #: How A is structured (DECAYS): "ladder" (A[:, n] = A[:, 0] (n + 1)) and "scalar" (A[:, n] =
    #: A[:, 0]) let the kernels read the rate A[:, 0] alone and compute exp(dt A) with one
    #: exponential per (position, channel) (scan_steps._decay). Not a tuning choice: the caller's
    #: promise about A, carried with the plan to every launch.
    decay: str = "full"

    def grid(self, batch: int, dim: int) -> tuple[int, int, int]:
        return (triton.cdiv(dim, self.block_d), self.segments, batch)

    def items(self, batch: int, dim: int) -> int:
        """(channel block, segment, batch row) units of work, which a persistent grid shares out."""
        return triton.cdiv(dim, self.block_d) * self.segments * batch


def _programs_wanted(device: torch.device, backward: bool) -> tuple[int, int]:
    """(fewest programs that need no segments, programs to aim for when segmenting).

    Segmenting costs a second pass over the inputs, so it pays only when the plain grid leaves
    most of the GPU idle: on a grid that already fills the GPU, two segments nearly double the
    forward's time. The backward's grid is persistent: it runs
    ``bwd_programs_per_sm`` programs per SM, each with its own scratch, whatever the work.
    """
    if device.type == "cuda":
        sms = torch.cuda.get_device_properties(device).multi_processor_count
        per_sm = TUNING.get("bwd_programs_per_sm", 16) if backward else TUNING.get("programs_per_sm", 8)
        return TUNING.get("min_programs_per_sm", 2) * sms, per_sm * sms
    return 4, 3  # interpreter runs: small, but enough to exercise segments and the persistent loop


def plan_launch(
    batch: int, dim: int, length: int, d_state: int, dim_per_group: int, device: torch.device,
    *, segments: int | None = None, backward: bool = False,
) -> LaunchPlan:
    """Choose tile sizes and the number of sequence segments for one forward or backward pass.

    Defaults are the fastest plans benchmarks/tune_scan.py found on H100 and H200 GPUs
    (docs/benchmarks-history.md); other GPUs may want others (``GENOMAMBA_SCAN_TUNING``). Both
    passes run one warp per program over a (channels x states) tile: 128 channels forward (fewer
    when d_state > 16), 64 backward, whose persistent grid keeps one checkpoint block of states per
    program in scratch.
    ``BLOCK_D`` always divides the channels of one group, so a program reads a single B/C group.
    Segments are added only when batch x channel blocks would leave the GPU under-filled.
    """
    if d_state > MAX_D_STATE:
        raise ValueError(f"d_state={d_state} exceeds the kernel's maximum of {MAX_D_STATE}")
    block_n = triton.next_power_of_2(max(d_state, 1))
    # Checkpoints every 64 positions: at 2^20 x 512 they take 0.5 GiB, which pays for the backward's
    # scratch (below); spacing them 32 apart is no faster and doubles their memory
    # (docs/benchmarks-history.md).
    block_t = TUNING.get("block_t", 64)
    tile_t, unroll, stages = 0, 1, 1
    enough, wanted = _programs_wanted(device, backward)
    if backward:
        # One warp of 64 channels, whole checkpoint blocks in scratch (no re-walk): larger tiles
        # spill more than they gain (tile sweeps in docs/benchmarks-history.md).
        block_d = TUNING.get("bwd_block_d", 64)
        num_warps = TUNING.get("bwd_warps", 1)
        tile_t = min(TUNING.get("bwd_block_t", block_t), block_t)
        if block_t % tile_t:
            raise ValueError(f"the backward sub-block ({tile_t}) must divide the checkpoint spacing "
                             f"({block_t})")
    else:
        # 128 channels per one-warp program (Triton then gives each lane 4 channels x all 16 states,
        # so C . h needs no shuffle and no lane repeats a channel's softplus and gate), loads of 4
        # positions issued together and prefetched two loop iterations ahead: the fastest forward
        # tile measured, well ahead of 64 channels (docs/benchmarks-history.md).
        block_d = TUNING.get("fwd_block_d") or max(1, min(128, 2048 // block_n))
        unroll = TUNING.get("fwd_unroll") or 4
        num_warps = TUNING.get("fwd_warps", 1)
        stages = TUNING.get("fwd_stages") or 3
    block_d = min(block_d, triton.next_power_of_2(dim_per_group))
    while dim_per_group % block_d:
        block_d //= 2
    n_chunks = triton.cdiv(length, block_t)
    base = batch * triton.cdiv(dim, block_d)  # items without segments: (batch row, channel block)
    if segments is None:
        # Rounded down: one program more than fit on the GPU at once starts a nearly empty second
        # round, whose time the whole pass pays.
        if backward:
            # The persistent grid runs `wanted` programs; segments fill it whenever the items cannot.
            segments = max(1, wanted // base)
        else:
            segments = 1 if base >= enough else max(1, wanted // base)
    segments = max(1, min(segments, n_chunks))
    seg_len = triton.cdiv(n_chunks, segments) * block_t
    segments = triton.cdiv(length, seg_len)
    programs = min(wanted, base * segments) if backward else 0
    return LaunchPlan(block_d, block_n, block_t, segments, seg_len, num_warps, tile_t, min(unroll, block_t),
                      programs, stages)


class ScanTensors(NamedTuple):
    """The tensors of one scan direction, named and ordered as in the contract.

    The same fields hold a direction's inputs (as given, or as the kernels read them, see
    :func:`_prepare`) and the gradients of those inputs, so a launch reads ``x.u`` and ``grads.u``.
    ``D``, ``z`` and ``delta_bias`` may be None.
    """

    u: torch.Tensor
    delta: torch.Tensor
    A: torch.Tensor
    B: torch.Tensor
    C: torch.Tensor
    D: torch.Tensor | None
    z: torch.Tensor | None
    delta_bias: torch.Tensor | None


#: tensors in one ScanTensors, for splitting the flat argument lists that autograd passes around
_PER_DIRECTION = len(ScanTensors._fields)


class _Plans(NamedTuple):
    """The launch plans of one direction's passes; they share block_t (the checkpoint spacing)."""

    forward: LaunchPlan
    backward: LaunchPlan


class _Like(NamedTuple):
    """What a gradient must look like to autograd: its input's shape and dtype."""

    shape: torch.Size
    dtype: torch.dtype


def _as_4d(x: torch.Tensor) -> torch.Tensor:
    """(batch, d_state, length) -> (batch, 1, d_state, length); strides are kept as they are."""
    return x.unsqueeze(1) if x.dim() == 3 else x


def _contiguous(x: torch.Tensor | None) -> torch.Tensor | None:
    return None if x is None else x.contiguous()


def _dense(x: torch.Tensor | None, read_only: bool = False) -> torch.Tensor | None:
    """A (batch, dim, length) tensor stored time-major, i.e. (batch, length, dim) in memory.

    The forward kernel reads one position of every channel per step, which coalesces only in this
    layout: on channel-major inputs the same forward is about 7x slower, while the copy costs one
    read and one write of the tensor. Time-major
    tensors, e.g. transposed views of a projection's (batch, length, dim) output, pass unchanged.
    u and delta must be dense: the gradient buffers are allocated like u (torch.empty_like) and
    written with its strides. Tensors the kernels only read (z, the output gradient) need unit
    stride along channels only, so a slice of a wider projection passes without a copy.
    """
    if x is None or (x.stride(1) == 1 if read_only else x.transpose(1, 2).is_contiguous()):
        return x
    return x.transpose(1, 2).contiguous().transpose(1, 2)


def _prepare(x: ScanTensors) -> ScanTensors:
    """The inputs as the kernels read them: u, delta dense and z with unit channel stride (see
    :func:`_dense`), B and C 4-D, A, D and delta_bias contiguous; tensors already so pass unchanged."""
    return ScanTensors(
        u=_dense(x.u), delta=_dense(x.delta), A=x.A.contiguous(), B=_as_4d(x.B), C=_as_4d(x.C),
        D=_contiguous(x.D), z=_dense(x.z, read_only=True), delta_bias=_contiguous(x.delta_bias),
    )


def _plans(x: ScanTensors, segments: int | None, decay: str = "full") -> _Plans:
    """The forward and backward plans of one direction's scan, after checking its shapes."""
    groups = _validate(x)
    if decay not in DECAYS:
        raise ValueError(f"decay must be one of {', '.join(DECAYS)}, got {decay!r}")
    batch, dim, length = x.u.shape
    return _Plans(*(
        dataclasses.replace(
            plan_launch(batch, dim, length, x.A.shape[1], dim // groups, x.u.device, segments=segments,
                        backward=backward),
            decay=decay)
        for backward in (False, True)
    ))


def _segment_states(batch: int, dim: int, segments: int, d_state: int, device) -> torch.Tensor:
    """Per-segment states, (batch, S, d_state, dim): channels fastest, as the kernels' state tiles
    load and store without a layout conversion (scan_steps._state_tile_ptrs)."""
    return torch.empty(batch, segments, d_state, dim, device=device, dtype=torch.float32)


def _as_segment_states(state: torch.Tensor) -> torch.Tensor:
    """A (batch, dim, d_state) state as the single segment of a (batch, 1, d_state, dim) tensor."""
    return state.transpose(1, 2).contiguous().unsqueeze(1)


def _segment_state(states: torch.Tensor, index: int) -> torch.Tensor:
    """Segment ``index`` of (batch, S, d_state, dim) states as a (batch, dim, d_state) tensor."""
    return states[:, index].transpose(1, 2).contiguous()


def _chain(local, dtsum, A, init, plan: LaunchPlan, reverse: bool):
    """States entering each segment, and the state leaving the last one (see scan_segments.py)."""
    batch, n_seg, d_state, dim = local.shape
    entering = torch.empty_like(local)
    final = torch.empty(batch, dim, d_state, device=local.device, dtype=torch.float32)
    block_d = 16
    _chain_segments_kernel[(triton.cdiv(dim, block_d), batch)](
        local, dtsum, A, init if init is not None else local, entering, final,
        dim, d_state, n_seg,
        BLOCK_D=block_d, BLOCK_N=plan.block_n, REVERSE=reverse, HAS_INIT=init is not None,
        FAST_MATH=fast_math(local.device), STAGES=TUNING.get("chain_stages", 8),
        enable_fp_fusion=FP_FUSION,
    )
    return entering, final


def _forward(x: ScanTensors, delta_softplus, initial_state, reverse, plan, want_ckpt, y=None):
    """Run the forward scan of the prepared inputs ``x``. Returns (y, final_state, checkpoints).

    With ``y`` given, it holds the other direction's ungated output and the result is added to it
    before gating (the second half of a bidirectional scan).
    """
    batch, dim, length = x.u.shape
    d_state = x.A.shape[1]
    dev = x.u.device
    add_to_y = y is not None
    y = torch.empty_like(x.u) if y is None else y
    h_out = _segment_states(batch, dim, plan.segments, d_state, dev)
    n_chunks = triton.cdiv(length, plan.block_t)
    # (batch, tile, state, channel): both passes read and write a state row across channels.
    ckpt = torch.empty(batch, n_chunks, d_state, dim, device=dev, dtype=torch.float32) if want_ckpt else y
    dtsum = torch.empty(batch, dim, plan.segments, device=dev, dtype=torch.float32)
    h_in = None
    A_t = x.A.t().contiguous()  # the forward kernel reads A as (d_state, dim)
    if plan.segments > 1:
        _launch_forward(x, A_t, delta_softplus, None, y, h_out, dtsum, ckpt, plan, reverse,
                        state_only=True, save_ckpt=False, add_to_y=False)
        h_in, _ = _chain(h_out, dtsum, x.A, initial_state, plan, reverse)
    elif initial_state is not None:
        h_in = _as_segment_states(initial_state)
    _launch_forward(x, A_t, delta_softplus, h_in, y, h_out, dtsum, ckpt, plan, reverse,
                    state_only=False, save_ckpt=want_ckpt, add_to_y=add_to_y)
    final = _segment_state(h_out, 0 if reverse else -1)
    return y, final, (ckpt if want_ckpt else None)


def _state_pass_plan(plan: LaunchPlan, dim_per_group: int) -> LaunchPlan:
    """The segmented forward's state-only pass: the output pass's plan, or TUNING's ``state_block_d``,
    ``state_unroll``, ``state_stages`` (for tune_scan.py).

    Both passes must cut the sequence the same way (segments, seg_len); the channel tile may
    differ, since per-segment states are stored per channel. Both passes prefetch 3 stages ahead by
    default, which makes the state pass faster than 2 stages do (docs/benchmarks-history.md).
    """
    keys = ("block_d", "unroll", "stages")
    changes = {key: TUNING[f"state_{key}"] for key in keys if TUNING.get(f"state_{key}")}
    if dim_per_group % changes.get("block_d", plan.block_d):
        raise ValueError(f"state_block_d={changes['block_d']} must divide the channels of a group "
                         f"({dim_per_group})")
    return dataclasses.replace(plan, **changes) if changes else plan


def _launch_forward(x: ScanTensors, A_t, delta_softplus, h_in, y, h_out, dtsum, ckpt, plan, reverse, *,
                    state_only, save_ckpt, add_to_y):
    batch, dim, length = x.u.shape
    dim_per_group = dim // x.B.shape[1]
    if state_only:
        plan = _state_pass_plan(plan, dim_per_group)
    # Absent optional tensors are flagged off (HAS_*); any valid pointer stands in for them.
    z = x.z if x.z is not None else x.u
    _selective_scan_fwd_kernel[plan.grid(batch, dim)](
        x.u, x.delta, A_t, x.B, x.C, x.D if x.D is not None else A_t, z,
        x.delta_bias if x.delta_bias is not None else A_t,
        h_in if h_in is not None else h_out, y, h_out, dtsum, ckpt,
        length, dim, A_t.shape[0], plan.seg_len, dim_per_group,
        *x.u.stride(), *x.delta.stride(), *z.stride(), *y.stride(), *x.B.stride(), *x.C.stride(),
        BLOCK_D=plan.block_d, BLOCK_N=plan.block_n, CKPT_EVERY=plan.block_t, UNROLL=plan.unroll,
        REVERSE=reverse, STATE_ONLY=state_only, HAS_Z=x.z is not None, HAS_D=x.D is not None,
        HAS_BIAS=x.delta_bias is not None, SOFTPLUS=delta_softplus, HAS_H_IN=h_in is not None,
        SAVE_CKPT=save_ckpt, ADD_TO_Y=add_to_y, STAGES=plan.stages, EVEN_D=dim % plan.block_d == 0,
        EVEN_N=A_t.shape[0] == plan.block_n, FAST_MATH=fast_math(x.u.device),
        DECAY=DECAYS.index(plan.decay), num_warps=plan.num_warps, enable_fp_fusion=FP_FUSION,
    )


def _backward(x: ScanTensors, ckpt, dout, d_final, grads: ScanTensors, plan, *, delta_softplus, reverse,
              accumulate_dz=False, accumulate_du=False):
    """Run the backward scan of the prepared inputs ``x`` (with the forward's checkpoints ``ckpt``),
    writing into ``grads`` (preallocated buffers, :func:`_grad_buffers`).

    ``accumulate_dz`` / ``accumulate_du`` add to what the buffers for dz / (du, ddelta) already hold
    (the second direction of a bidirectional scan). dA, dB, dC, dD, d delta_bias always accumulate.

    Returns the gradient of the initial state (batch, dim, d_state) fp32.
    """
    batch, dim, length = x.u.shape
    d_state = x.A.shape[1]
    carry_out = _segment_states(batch, dim, plan.segments, d_state, x.u.device)
    dtsum = torch.empty(batch, dim, plan.segments, device=x.u.device, dtype=torch.float32)
    carry_in = None
    A_t = x.A.t().contiguous()  # the kernel reads A as (d_state, dim): a state's row across channels
    if plan.segments > 1:
        _launch_backward(x, ckpt, A_t, delta_softplus, dout, None, carry_out, dtsum, grads, plan, reverse,
                         adjoint_only=True, accumulate_dz=False, accumulate_du=False)
        carry_in, _ = _chain(carry_out, dtsum, x.A, d_final, plan, not reverse)
    elif d_final is not None:
        carry_in = _as_segment_states(d_final)
    _launch_backward(x, ckpt, A_t, delta_softplus, dout, carry_in, carry_out, dtsum, grads, plan, reverse,
                     adjoint_only=False, accumulate_dz=accumulate_dz, accumulate_du=accumulate_du)
    return _segment_state(carry_out, -1 if reverse else 0)


def _kept_dtype(input_dtype: torch.dtype) -> torch.dtype:
    """Storage of the backward's kept state tiles (a_t h_{t-1}, one per position of a sub-block).

    That scratch is most of the backward's memory traffic: kept in fp32, at 2^20 x 512 it moves
    69 GB through L2 and DRAM, enough to bound the kernel (Nsight Compute figures in
    docs/benchmarks-history.md).
    With bf16 inputs it is kept in fp16, which halves that traffic. The tile only enters d delta and
    dA, as a factor of dh_t whose products are summed in fp32; fp16's rounding (2^-12 relative) is
    well inside the error that bf16 inputs and outputs carry, where bf16 tiles (2^-9) are not:
    they break the tolerance rule on dA, d delta and d delta_bias (GPU tests,
    docs/benchmarks-history.md).
    fp16 holds states up to 65504: a larger one is stored as infinity, which makes those gradients
    non-finite (loudly, never silently wrong; the trainers skip such a step, genomamba.train.step);
    such models, and fp16 and fp32 inputs, keep fp32 tiles (TUNING["bwd_kept_fp32"] = 1 forces
    them for any input).
    """
    if input_dtype == torch.bfloat16 and not TUNING.get("bwd_kept_fp32"):
        return torch.float16
    return torch.float32


def _launch_backward(x: ScanTensors, ckpt, A_t, delta_softplus, dout, carry_in, carry_out, dtsum,
                     grads: ScanTensors, plan, reverse, *, adjoint_only, accumulate_dz, accumulate_du):
    batch, dim, length = x.u.shape
    d_state = x.A.shape[1]
    # Absent optional tensors are flagged off (HAS_*); any valid pointer stands in for them.
    z = x.z if x.z is not None else x.u
    # Per-program scratch (see scan_backward.py): what a sub-block's forward walk keeps for its
    # reverse walk (a state tile per position, in _kept_dtype, and four fp32 per-channel values per
    # position) and the states entering each sub-block of a checkpoint block. The adjoint-only pass
    # does not touch it.
    tile = plan.block_n * plan.block_d
    if adjoint_only:
        kept = scratch = carry_out
    else:
        kept = torch.empty(plan.programs * plan.tile_t * tile, device=x.u.device,
                           dtype=_kept_dtype(x.u.dtype))
        per_program = plan.block_t // plan.tile_t * tile + plan.tile_t * 4 * plan.block_d
        scratch = torch.empty(plan.programs * per_program, device=x.u.device, dtype=torch.float32)
    _selective_scan_bwd_kernel[(plan.programs,)](
        x.u, x.delta, A_t, x.B, x.C, x.D if x.D is not None else x.A, z,
        x.delta_bias if x.delta_bias is not None else x.A,
        dout, ckpt, carry_in if carry_in is not None else carry_out,
        grads.u, grads.delta, grads.z if x.z is not None else grads.u, grads.A, grads.B, grads.C,
        grads.D if x.D is not None else grads.A,
        grads.delta_bias if x.delta_bias is not None else grads.A,
        carry_out, dtsum, kept, scratch,
        length, dim, d_state, plan.seg_len, dim // x.B.shape[1], plan.segments, plan.items(batch, dim),
        *x.u.stride(), *x.delta.stride(), *z.stride(), *dout.stride(), *x.B.stride(), *x.C.stride(),
        *grads.B.stride(), *grads.C.stride(),
        BLOCK_D=plan.block_d, BLOCK_N=plan.block_n, SUB=plan.tile_t, CKPT_EVERY=plan.block_t,
        REVERSE=reverse, ADJOINT_ONLY=adjoint_only, HAS_Z=x.z is not None,
        HAS_D=x.D is not None, HAS_BIAS=x.delta_bias is not None, SOFTPLUS=delta_softplus,
        HAS_CARRY_IN=carry_in is not None,
        ACCUMULATE_DZ=accumulate_dz, ACCUMULATE_DU=accumulate_du, EVEN_D=dim % plan.block_d == 0,
        EVEN_N=d_state == plan.block_n, FAST_MATH=fast_math(x.u.device),
        DECAY=DECAYS.index(plan.decay), num_warps=plan.num_warps, enable_fp_fusion=FP_FUSION,
        **({"maxnreg": TUNING["bwd_maxnreg"]} if "bwd_maxnreg" in TUNING else {}),
    )


def _grad_buffers(x: ScanTensors) -> ScanTensors:
    """Gradient buffers for the prepared inputs ``x`` (None where an input is None): zeroed fp32
    accumulators for the reduced gradients (A, B, C, D, delta_bias), uninitialised ones for the
    per-element ones, which the backward kernel writes with u's strides."""
    f32 = torch.float32

    def zeros(t):
        return None if t is None else torch.zeros(t.shape, device=t.device, dtype=f32)

    return ScanTensors(
        u=torch.empty_like(x.u),
        delta=torch.empty_like(x.u, dtype=x.delta.dtype),
        A=zeros(x.A), B=zeros(x.B), C=zeros(x.C), D=zeros(x.D),
        z=None if x.z is None else torch.empty_like(x.u, dtype=x.z.dtype),
        delta_bias=zeros(x.delta_bias),
    )


def _likeness(x: ScanTensors) -> ScanTensors:
    """The shape and dtype of each input as given (None for an input left out)."""
    return ScanTensors(*(None if t is None else _Like(t.shape, t.dtype) for t in x))


def _input_grads(grads: ScanTensors, given: ScanTensors) -> ScanTensors:
    """What autograd gets for one direction's inputs: None where ``given`` (from :func:`_likeness`)
    has None; du, d delta and dz as the kernel wrote them; the fp32 sums dA, dB, dC, dD and
    d delta_bias in their input's shape (B and C ran 4-D) and dtype."""

    def written(g, like):
        return None if like is None else g

    def summed(g, like):
        return None if like is None else g.reshape(like.shape).to(like.dtype)

    return ScanTensors(
        u=written(grads.u, given.u), delta=written(grads.delta, given.delta),
        A=summed(grads.A, given.A), B=summed(grads.B, given.B), C=summed(grads.C, given.C),
        D=summed(grads.D, given.D), z=written(grads.z, given.z),
        delta_bias=summed(grads.delta_bias, given.delta_bias),
    )


class _SelectiveScanFn(torch.autograd.Function):
    """One direction. ``apply(initial_state, delta_softplus, reverse, plans, need_grad, *inputs)``
    with ``inputs`` the fields of a :class:`ScanTensors`, passed flat so that autograd sees them."""

    @staticmethod
    def forward(ctx, initial_state, delta_softplus, reverse, plans: _Plans, need_grad, *inputs):
        given = ScanTensors(*inputs)
        x = _prepare(given)
        h0 = None if initial_state is None else initial_state.float().contiguous()
        y, final, ckpt = _forward(x, delta_softplus, h0, reverse, plans.forward, want_ckpt=need_grad)
        ctx.save_for_backward(ckpt, *x)
        ctx.delta_softplus, ctx.reverse, ctx.plans = delta_softplus, reverse, plans
        ctx.given = _likeness(given)
        ctx.has_initial_state = initial_state is not None
        return y, final

    @staticmethod
    def backward(ctx, dy, d_final):
        ckpt, *saved = ctx.saved_tensors
        x = ScanTensors(*saved)
        grads = _grad_buffers(x)
        d_final = None if d_final is None else d_final.float().contiguous()
        dh0 = _backward(x, ckpt, _dense(dy, read_only=True), d_final, grads, ctx.plans.backward,
                        delta_softplus=ctx.delta_softplus, reverse=ctx.reverse)
        return (dh0 if ctx.has_initial_state else None, None, None, None, None,
                *_input_grads(grads, ctx.given))


def _validate(x: ScanTensors) -> int:
    """The number of B/C groups of one direction's inputs, after checking their shapes."""
    u, delta, A, B, C = x.u, x.delta, x.A, x.B, x.C
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"u and delta must be (batch, dim, length) and equal; got {tuple(u.shape)}, "
                         f"{tuple(delta.shape)}")
    if B.dim() not in (3, 4) or C.dim() not in (3, 4):
        raise ValueError("B and C must be (batch, d_state, length) or (batch, groups, d_state, length)")
    if A.dim() != 2 or A.shape[0] != u.shape[1]:
        raise ValueError(f"A must be (dim, d_state) = ({u.shape[1]}, d_state); got {tuple(A.shape)}")
    groups = 1 if B.dim() == 3 else B.shape[1]
    if u.shape[1] % groups:
        raise ValueError(f"dim={u.shape[1]} is not divisible by groups={groups}")
    return groups


def _needs_grad(tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def selective_scan_triton(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, *,
    initial_state=None, return_final_state=False, reverse=False, decay="full", segments=None,
):
    """Selective scan on the GPU (or Triton's interpreter). See genomamba.ops for the contract.

    ``decay``: "full", or A's structure ("ladder": A[:, n] = A[:, 0] (n + 1); "scalar": A[:, n] =
    A[:, 0]), which lets one exponential per channel and position suffice (see :class:`LaunchPlan`).
    ``segments`` overrides the automatic choice
    of sequence segments (a tuning and test knob).
    Returns y (batch, dim, length) in u's dtype, or (y, final_state) with return_final_state.
    """
    x = ScanTensors(u, delta, A, B, C, D, z, delta_bias)
    plans = _plans(x, segments, decay)
    need_grad = _needs_grad((*x, initial_state))
    y, final = _SelectiveScanFn.apply(initial_state, bool(delta_softplus), bool(reverse), plans, need_grad,
                                      *x)
    return (y, final) if return_final_state else y


def _split_directions(flat) -> tuple[ScanTensors, ScanTensors]:
    """Two directions' tensors, passed flat (as autograd passes them), as two ScanTensors."""
    return ScanTensors(*flat[:_PER_DIRECTION]), ScanTensors(*flat[_PER_DIRECTION:])


def _unless_shared(shared: ScanTensors, own: ScanTensors, fwd: ScanTensors | None) -> ScanTensors:
    """``own``, with ``fwd``'s entry (None when ``fwd`` is None) wherever ``shared`` says so."""
    fwd = fwd if fwd is not None else ScanTensors(*(None,) * _PER_DIRECTION)
    return ScanTensors(*(f if is_shared else o for is_shared, o, f in zip(shared, own, fwd, strict=True)))


class _BidirectionalScanFn(torch.autograd.Function):
    """(forward scan + reverse scan) * silu(z).
    ``apply(delta_softplus, plans_fwd, plans_rev, need_grad, *fwd, *rev)`` with ``fwd`` and ``rev``
    the fields of two :class:`ScanTensors`, passed flat so that autograd sees them.

    Inputs the reverse direction shares with the forward one (the very same tensor: the gate z
    always, any ``*_rev`` left out) get one gradient buffer, accumulated in place by the second
    backward pass, and their gradient is returned once, in the forward direction's place."""

    @staticmethod
    def forward(ctx, delta_softplus, plans_fwd: _Plans, plans_rev: _Plans, need_grad, *inputs):
        given_fwd, given_rev = _split_directions(inputs)
        shared = ScanTensors(*(f is r for f, r in zip(given_fwd, given_rev, strict=True)))
        fwd = _prepare(given_fwd)
        rev = _prepare(given_rev._replace(z=fwd.z))  # the gate, prepared once
        # Reverse first, ungated, into y; the forward pass adds its part and applies the gate.
        y, _, ckpt_rev = _forward(rev._replace(z=None), delta_softplus, None, True, plans_rev.forward,
                                  need_grad)
        y, _, ckpt_fwd = _forward(fwd, delta_softplus, None, False, plans_fwd.forward, need_grad, y=y)
        ctx.save_for_backward(ckpt_fwd, ckpt_rev, *fwd, *rev)
        ctx.delta_softplus, ctx.shared = delta_softplus, shared
        ctx.plans_fwd, ctx.plans_rev = plans_fwd, plans_rev
        ctx.given_fwd = _likeness(given_fwd)
        ctx.given_rev = _unless_shared(shared, _likeness(given_rev), None)  # shared: counted in fwd
        return y

    @staticmethod
    def backward(ctx, dy):
        ckpt_fwd, ckpt_rev, *saved = ctx.saved_tensors
        fwd, rev = _split_directions(saved)
        shared = ctx.shared
        dy = _dense(dy, read_only=True)
        grads_fwd = _grad_buffers(fwd)
        # the gate is always shared: no buffer of its own
        grads_rev = _unless_shared(shared, _grad_buffers(rev._replace(z=None)), grads_fwd)
        _backward(fwd, ckpt_fwd, dy, None, grads_fwd, ctx.plans_fwd.backward,
                  delta_softplus=ctx.delta_softplus, reverse=False)
        _backward(rev, ckpt_rev, dy, None, grads_rev, ctx.plans_rev.backward,
                  delta_softplus=ctx.delta_softplus, reverse=True,
                  accumulate_dz=True, accumulate_du=shared.u and shared.delta)
        return (None, None, None, None,  # delta_softplus, plans_fwd, plans_rev, need_grad
                *_input_grads(grads_fwd, ctx.given_fwd), *_input_grads(grads_rev, ctx.given_rev))


def bidirectional_selective_scan_triton(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, *,
    u_rev=None, delta_rev=None, A_rev=None, B_rev=None, C_rev=None, D_rev=None, delta_bias_rev=None,
    decay="full", segments=None,
):
    """(scan(u, ...) + reverse scan(u_rev, ...)) * silu(z); ``*_rev=None`` shares the forward tensor.

    ``decay``: both directions' A structure (see :func:`selective_scan_triton`).
    Returns y (batch, dim, length) in u's dtype.
    """
    if (u_rev is None) != (delta_rev is None):
        raise ValueError("u_rev and delta_rev must be given together (or both left out to share u, delta)")
    fwd = ScanTensors(u, delta, A, B, C, D, z, delta_bias)
    rev = ScanTensors(
        u=u if u_rev is None else u_rev, delta=delta if delta_rev is None else delta_rev,
        A=A if A_rev is None else A_rev, B=B if B_rev is None else B_rev, C=C if C_rev is None else C_rev,
        D=D if D_rev is None else D_rev, z=z,
        delta_bias=delta_bias if delta_bias_rev is None else delta_bias_rev,
    )
    plans_fwd, plans_rev = _plans(fwd, segments, decay), _plans(rev, segments, decay)
    need_grad = _needs_grad((*fwd, *rev))
    return _BidirectionalScanFn.apply(bool(delta_softplus), plans_fwd, plans_rev, need_grad, *fwd, *rev)
