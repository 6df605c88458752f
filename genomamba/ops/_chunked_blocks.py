"""Building blocks of the chunked selective scan (:mod:`genomamba.ops.selective_scan_chunked`).

The plan (chunk, block and span sizes), the reusable work buffers, the chunked linear scan of one block, the
layout changes between the caller's channel-major ``(batch, dim, length)`` tensors and the position-major
work arrays, and :class:`_Scan`, which holds one call's operands and does the per-span and per-block steps
shared by the forward and the backward. Private to the chunked backend; imports only torch.
"""

from __future__ import annotations

import math

import torch

LOG2E = 1.0 / math.log(2.0)
_BLOCK_ELEMENTS = 1 << 20  # state elements per block work array: 4 MiB in fp32, cache-resident on a small CPU
_LANES_PER_OP = 1 << 16  # elements per loop op: smaller ops are overhead-bound and run on one thread
_SPAN_ELEMENTS = 1 << 17  # batch·dim·positions per span: the channel-major steps work on 512 KiB slices


class _Plan:
    """Sizes of one call.

    ``T`` positions per chunk, ``K`` chunks per block (``Lb = T·K`` positions, the unit of the state work),
    ``m`` blocks per *span* (``Ls = m·Lb`` positions, the unit of the channel-major work: bias, softplus,
    gate and the layout changes, which cost a few microseconds per op whatever their size, so they are
    done on slices larger than a block; longer slices also read the caller's arrays in longer runs).
    """

    def __init__(self, b: int, g: int, dg: int, n: int, L: int, T: int | None, K: int | None):
        lanes = b * g * n * dg
        self.T = T = T or 16
        if K is None:
            K = max(2, -(-_LANES_PER_OP // lanes))
            K = max(1, min(K, 64, _BLOCK_ELEMENTS // (lanes * T) or 1, -(-L // T)))
        self.K = K
        self.Lb = T * K
        self.nblk = -(-L // self.Lb)
        self.m = max(1, min(self.nblk, _SPAN_ELEMENTS // (b * g * dg * self.Lb)))
        self.Ls = self.m * self.Lb
        self.nspan = -(-self.nblk // self.m)
        self.b, self.g, self.dg, self.n, self.L, self.M = b, g, dg, n, L, lanes

    def span(self, i: int) -> tuple[int, int]:
        """``(start, end)`` of span ``i``."""
        return i * self.Ls, min(self.L, (i + 1) * self.Ls)

    def blocks(self, i: int, reverse: bool) -> list[tuple[int, int, int, int]]:
        """``(j, start, end, chunks)`` of the blocks of span ``i`` in scan order; the sequence's last block
        may be short, its last chunk padded."""
        out = []
        for j in range(i * self.m, min(self.nblk, (i + 1) * self.m)):
            s = j * self.Lb
            e = min(self.L, s + self.Lb)
            out.append((j, s, e, -(-(e - s) // self.T)))
        return out[::-1] if reverse else out

    def spans(self, reverse: bool) -> range:
        return range(self.nspan - 1, -1, -1) if reverse else range(self.nspan)


class _Work:
    """Buffers reused by every block and span (fresh multi-MB tensors each time would cost page faults).

    ``big``: ``n_big`` state arrays ``(Lb, b, g, n, dg)``; ``pm(i, l)``: position-major ``(l, b, d)`` span
    arrays; ``nat(i, l)``: contiguous channel-major ``(b, d, l)`` span arrays.
    """

    def __init__(self, p: _Plan, dtype, device, n_big: int):
        d = p.g * p.dg
        self.p, self.d = p, d
        self.big = [torch.empty(p.Lb, p.b, p.g, p.n, p.dg, dtype=dtype, device=device) for _ in range(n_big)]
        self._pm = [torch.empty(p.Ls, p.b, d, dtype=dtype, device=device) for _ in range(5)]
        self._nat = [torch.empty(p.b * d * p.Ls, dtype=dtype, device=device) for _ in range(6)]
        self.ptot = torch.empty(p.Ls // p.T, p.b, p.g, p.n, p.dg, dtype=dtype, device=device)
        self.pp = torch.empty(2, max(p.K - 1, 1), p.M, dtype=dtype, device=device)
        self.ins = torch.empty(p.K, p.M, dtype=dtype, device=device)
        self.carry = [torch.empty(p.M, dtype=dtype, device=device) for _ in range(2)]
        self.ptot_rows = self.ptot.view(-1, p.M).unbind(0)
        self.ins_rows = self.ins.unbind(0)
        self._steps: dict = {}

    def pm(self, i: int, l: int) -> torch.Tensor:
        return self._pm[i][:l]

    def nat(self, i: int, l: int) -> torch.Tensor:
        return self._nat[i][: self.p.b * self.d * l].view(self.p.b, self.d, l)

    def pingpong(self, k: int):
        """The two ``(k - 1, M)`` pass-1 buffers and their rows (cached, like :meth:`steps`)."""
        if k not in self._steps:
            pp = (self.pp[0, : k - 1], self.pp[1, : k - 1])
            self._steps[k] = (pp, (pp[0].unbind(0), pp[1].unbind(0)))
        return self._steps[k]

    def steps(self, X: torch.Tensor, k: int):
        """Per-position ``(k, M)`` views of a big array: all chunks, all but the last, all but the first."""
        key = (X.data_ptr(), k)
        if key not in self._steps:  # cached: each slice costs about a microsecond of Python
            v = X[: k * self.p.T].view(k, self.p.T, self.p.M).unbind(1)
            self._steps[key] = (v, [s[: k - 1] for s in v], [s[1:] for s in v])
        return self._steps[key]


def _scan_chunks(w: _Work, a, x, k: int, ptot: list, carry, reverse: bool, after: bool, out) -> torch.Tensor:
    """In-place chunked linear scan of one block's ``k`` chunks; returns the carry leaving it (in ``out``).

    ``a, x``: big arrays (decays; inputs, which become the states); ``ptot``: the ``k`` rows ``(M,)`` of
    each chunk's total decay; ``carry``: ``(M,)`` entering the block. Positions go in increasing order
    (decreasing if ``reverse``).

    * ``after=False`` (forward recurrence): ``x_t ← a_t x_prev + x_t``; the carry is the state.
    * ``after=True`` (adjoint recurrence): ``x_t ← a_prev x_prev + x_t``; the carry entering a chunk is
      already multiplied by the decay of the position before it, and the carry leaving is ``a_last·x_last``.
    """
    T = w.p.T
    a_all, a_head, a_tail = w.steps(a, k)
    x_all, x_head, x_tail = w.steps(x, k)
    order = range(T - 1, -1, -1) if reverse else range(T)
    first, last = order[0], order[-1]
    # Pass 1 over every chunk but the last one scanned (nobody needs that one's local end state).
    a_sel, x_sel = (a_tail, x_tail) if reverse else (a_head, x_head)
    pp, pp_rows = w.pingpong(k)
    cur_rows = None
    if k > 1:
        cur, prev = x_sel[first], first
        for i, t in enumerate(order[1:]):
            cur = torch.addcmul(x_sel[t], a_sel[prev] if after else a_sel[t], cur, out=pp[i % 2])
            cur_rows = pp_rows[i % 2]
            prev = t
        if after:
            torch.mul(cur, a_sel[last], out=pp[(T - 1) % 2])
            cur_rows = pp_rows[(T - 1) % 2]
        if cur_rows is None:  # T == 1: the chunk's end is its only input
            cur_rows = cur.unbind(0)
    # Carry across chunks: ins[c] enters chunk c; cur row r holds chunk r (forward) or r + 1 (reverse).
    ins = w.ins[:k]
    ins_l = w.ins_rows
    if not reverse:
        ins_l[0].copy_(carry)
        for c in range(k - 1):
            torch.addcmul(cur_rows[c], ptot[c], ins_l[c], out=ins_l[c + 1])
    else:
        ins_l[k - 1].copy_(carry)
        for c in range(k - 1, 0, -1):
            torch.addcmul(cur_rows[c - 1], ptot[c], ins_l[c], out=ins_l[c - 1])
    # Pass 2, in place, from the true chunk starts.
    if after:
        x_all[first].add_(ins)
    else:
        x_all[first].addcmul_(a_all[first], ins)
    prev = first
    for t in order[1:]:
        x_all[t].addcmul_(a_all[prev] if after else a_all[t], x_all[prev])
        prev = t
    kl = 0 if reverse else k - 1  # the last chunk scanned
    if after:
        return torch.mul(x_all[last][kl], a_all[last][kl], out=out)
    return out.copy_(x_all[last][kl])


def _to_pm(nat: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Contiguous ``(b, c, l)`` → ``out[:l]`` ``(l, b, c)`` (as a 2-D transposed view: ATen's blocked
    transpose copy, up to 3x faster than a 3-D permuted copy here)."""
    b, c, l = nat.shape
    out[:l].view(l, b * c).copy_(nat.view(b * c, l).t())
    return out


def _from_pm(pm: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Contiguous ``(≥l, b, c)`` → contiguous ``out`` ``(b, c, l)``."""
    b, c, l = out.shape
    out.view(b * c, l).copy_(pm[:l].view(l, b * c).t())
    return out


def _channel_major(t: torch.Tensor | None) -> torch.Tensor | None:
    # A block slice [:, :, s:e] of a length-contiguous tensor is runs of e - s elements; anything else (such
    # as a (b, L, d) activation viewed as (b, d, L)) is copied once, O(inputs), instead of gathered per block.
    return t if t is None or t.stride(-1) == 1 else t.contiguous()


class _Scan:
    """One call's operands in compute precision and block layouts, and the per-span and per-block steps shared
    by the forward and the backward.

    ``shape`` is ``(batch, dim, length)``; ``cd`` the compute dtype. ``u`` and ``delta`` are given to the
    forward; the backward, which reads the position-major Δ and u that the forward saved, passes None.
    """

    def __init__(self, shape, cd, device, u, delta, A, B, C, D, z, bias, h0, softplus, reverse, T, K):
        b, d, L = shape
        g, n = B.shape[1], B.shape[2]
        self.cd = cd
        p = self.p = _Plan(b, g, d // g, n, L, T, K)
        self.u, self.delta, self.z = _channel_major(u), _channel_major(delta), _channel_major(z)
        self.A = A.to(cd)
        self.A2 = (self.A * LOG2E).view(g, p.dg, n).transpose(1, 2).contiguous()  # (g, n, dg), log2 units
        # B and C are d_state/dim the size of u: one position-major copy (zero past L) for the whole call.
        Lp = p.nblk * p.Lb
        self.BP = torch.zeros(Lp, b, g, n, dtype=cd, device=device)
        self.BP[:L].copy_(B.permute(3, 0, 1, 2))
        self.CP = torch.zeros(Lp, b, g, n, dtype=cd, device=device)
        self.CP[:L].copy_(C.permute(3, 0, 1, 2))
        self.D = None if D is None else D.to(cd)  # (d,): broadcasts over position-major (l, b, d)
        self.bias = None if bias is None else bias.to(cd)[:, None]
        self.softplus, self.reverse = softplus, reverse
        self.h0 = torch.zeros(p.M, dtype=cd, device=device) if h0 is None else self.lanes(h0.to(cd))

    def lanes(self, h: torch.Tensor) -> torch.Tensor:
        """State ``(b, d, n)`` → lanes ``(M,)`` in (b, g, n, dg) order."""
        p = self.p
        return h.reshape(p.b, p.g, p.dg, p.n).transpose(-1, -2).reshape(p.M)

    def unlanes(self, h: torch.Tensor) -> torch.Tensor:
        """Lanes ``(M,)`` → state ``(b, d, n)``."""
        p = self.p
        return h.view(p.b, p.g, p.n, p.dg).transpose(-1, -2).reshape(p.b, p.g * p.dg, p.n)

    def padded(self, l: int) -> int:
        """``l`` rounded up to whole chunks."""
        return -(-l // self.p.T) * self.p.T

    def span_inputs(self, w: _Work, S0: int, E0: int, save_dt=None, save_u=None):
        """Position-major Δ, u and Δ·u of span [S0, E0), zero-padded to whole chunks: ``(dtP, uP, xP)`` in
        ``w.pm(0)``, ``w.pm(3)``, ``w.pm(1)``, with ``Δ = softplus(delta + bias)``; Δ and u are also copied
        into ``save_dt[S0:]``, ``save_u[S0:]`` when given. Each chunk's total decay goes to ``w.ptot``."""
        l = E0 - S0
        lp = self.padded(l)
        raw = w.nat(0, l)
        if self.bias is None:
            raw.copy_(self.delta[:, :, S0:E0])
        else:
            torch.add(self.delta[:, :, S0:E0], self.bias, out=raw)
        if self.softplus:  # F.softplus, in place: a fresh span-sized tensor each span costs page faults
            torch.ops.aten.softplus.out(raw, 1.0, 20.0, out=raw)
        dtP = _to_pm(raw, w.pm(0, lp))
        # u is copied to a contiguous buffer first: transposing straight out of the (b, d, L) tensor reads
        # rows length-stride apart and measured several times slower
        uP = _to_pm(w.nat(1, l).copy_(self.u[:, :, S0:E0]), w.pm(3, lp))
        if lp > l:  # Δ = 0 and input 0 make the padded positions leave the state unchanged
            dtP[l:].zero_()
            uP[l:].zero_()
        if save_dt is not None:
            save_dt[S0 : S0 + lp].copy_(dtP)
            save_u[S0 : S0 + lp].copy_(uP)
        self.chunk_decays(w, dtP)
        return dtP, uP, torch.mul(dtP, uP, out=w.pm(1, lp))

    def span_inputs_saved(self, w: _Work, S0: int, E0: int, saved_dt, saved_u):
        """As :meth:`span_inputs` from the saved position-major Δ and u: ``(dtP, uP, xP)``, ``xP`` in
        ``w.pm(1)``."""
        lp = self.padded(E0 - S0)
        dtP, uP = saved_dt[S0 : S0 + lp], saved_u[S0 : S0 + lp]
        self.chunk_decays(w, dtP)
        return dtP, uP, torch.mul(dtP, uP, out=w.pm(1, lp))

    def chunk_decays(self, w: _Work, dtP: torch.Tensor) -> None:
        """Each chunk's total decay ``exp(A·ΣΔ)`` into ``w.ptot`` (rows ``w.ptot_rows``), from ``dtP``."""
        p = self.p
        nc = dtP.shape[0] // p.T
        ptot = w.ptot[:nc]
        torch.mul(dtP.view(nc, p.T, p.b, p.g, 1, p.dg).sum(1), self.A2, out=ptot)
        ptot.exp2_()

    def states(self, w: _Work, dtP, xP, ptot: list, s: int, k: int, h, out_carry, x_buf):
        """Scan one block (``dtP, xP``: its ``k·T`` rows; ``ptot``: its chunks' decays) from state ``h``:
        ``(a, x, carry)``, ``x`` holding every state of the block, ``a = 2^(Δ·A·log2 e)`` (in ``w.big[0]``)
        its decays."""
        p = self.p
        kT = k * p.T
        a = w.big[0][:kT]
        torch.mul(dtP.view(kT, p.b, p.g, 1, p.dg), self.A2, out=a)
        a.exp2_()
        x = x_buf[:kT]
        torch.mul(xP.view(kT, p.b, p.g, 1, p.dg), self.BP[s : s + kT].unsqueeze(-1), out=x)
        carry = _scan_chunks(w, a, x, k, ptot, h, self.reverse, False, out_carry)
        return a, x, carry

    def output(self, x: torch.Tensor, s: int, k: int, out: torch.Tensor) -> torch.Tensor:
        """``y_t = Σ_n C_t[n] h_t[n]`` for the block, position-major ``(k·T, b, d)`` in ``out``."""
        p = self.p
        nb = k * p.T * p.b * p.g
        torch.bmm(self.CP[s : s + k * p.T].view(nb, 1, p.n), x.view(nb, p.n, p.dg), out=out.view(nb, 1, p.dg))
        return out
