"""Compile the scan kernels for sm_90 on any machine (no GPU needed) and report what the GPU would run.

Each kernel is specialised as a launch of the scan issue's problem would specialise it (batch 1,
length 2^20, dim 512, d_state 16, bf16 inputs stored time-major): unit strides become constants,
and pointers and integers divisible by 16 are marked so, which decides whether loads vectorise.
Prints registers and stack bytes (spills) and, for every loop of the SASS, its instruction count
and mix, read with the cuobjdump that Triton's own package carries::

    python benchmarks/sass_report.py forward                          # output pass, default plan
    python benchmarks/sass_report.py forward STATE_ONLY=1 BLOCK_D=64  # constexpr overrides
    python benchmarks/sass_report.py backward ADJOINT_ONLY=1
    PYTHONPATH=/tmp/triton36 python benchmarks/sass_report.py backward  # another Triton version

The code depends on the Triton version and its bundled ptxas: read it with the version the GPU
runs (``pip install --no-deps --target /tmp/triton36 triton==3.6.0`` beside the project's own).
Used to find layout conversions and spills before spending device time (docs/benchmarks-history.md).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from genomamba.kernels.scan_backward import _selective_scan_bwd_kernel  # noqa: E402
from genomamba.kernels.scan_forward import _selective_scan_fwd_kernel  # noqa: E402

LENGTH, DIM, D_STATE, SEGMENTS = 1 << 20, 512, 16, 256


def _tensor_strides(prefixes, kinds):
    """Strides of time-major (batch, dim, length) tensors and (batch, groups, d_state, length) B/C."""
    out = {}
    for p in prefixes:
        out.update({f"stride_{p}b": LENGTH * DIM, f"stride_{p}d": 1, f"stride_{p}l": DIM})
    for p in kinds:
        out.update({f"stride_{p}b": LENGTH * D_STATE, f"stride_{p}g": LENGTH * D_STATE, f"stride_{p}n": 1,
                    f"stride_{p}l": D_STATE})
    return out


def forward_problem():
    values = {name: "*bf16" for name in ("u_ptr", "dt_ptr", "B_ptr", "C_ptr", "z_ptr", "y_ptr")}
    values.update({name: "*fp32" for name in ("AT_ptr", "D_ptr", "bias_ptr", "h_in_ptr", "h_out_ptr",
                                               "dtsum_ptr", "ckpt_ptr")})
    values.update(length=LENGTH, dim=DIM, d_state=D_STATE, seg_len=LENGTH // SEGMENTS, dim_per_group=DIM,
                  **_tensor_strides(("u", "dt", "z", "y"), ("b", "c")))
    constants = dict(BLOCK_D=128, BLOCK_N=16, CKPT_EVERY=64, UNROLL=4, REVERSE=False, STATE_ONLY=False,
                     HAS_Z=True, HAS_D=True, HAS_BIAS=True, SOFTPLUS=True, HAS_H_IN=True, SAVE_CKPT=True,
                     ADD_TO_Y=False, STAGES=3, EVEN_D=True, EVEN_N=True, FAST_MATH=True)
    return _selective_scan_fwd_kernel, values, constants


def backward_problem():
    values = {name: "*bf16" for name in ("u_ptr", "dt_ptr", "B_ptr", "C_ptr", "z_ptr", "dout_ptr", "du_ptr",
                                         "ddelta_ptr", "dz_ptr")}
    values.update({name: "*fp32" for name in ("AT_ptr", "D_ptr", "bias_ptr", "ckpt_ptr", "carry_in_ptr",
                                               "dA_ptr", "dB_ptr", "dC_ptr", "dD_ptr", "dbias_ptr",
                                               "carry_out_ptr", "dtsum_ptr", "scratch_ptr")})
    values["kept_ptr"] = "*fp16"  # bf16 inputs keep their state tiles in fp16 (_kept_dtype)
    values.update(length=LENGTH, dim=DIM, d_state=D_STATE, seg_len=LENGTH // SEGMENTS, dim_per_group=DIM,
                  n_seg=SEGMENTS, n_items=SEGMENTS * DIM // 64,
                  **_tensor_strides(("u", "dt", "z", "o"), ("b", "c", "db", "dc")))
    constants = dict(BLOCK_D=64, BLOCK_N=16, SUB=64, CKPT_EVERY=64, REVERSE=False, ADJOINT_ONLY=False,
                     HAS_Z=True, HAS_D=True, HAS_BIAS=True, SOFTPLUS=True, HAS_CARRY_IN=True,
                     ACCUMULATE_DZ=False, ACCUMULATE_DU=False, EVEN_D=True, EVEN_N=True, FAST_MATH=True)
    return _selective_scan_bwd_kernel, values, constants


PROBLEMS = {"forward": forward_problem, "backward": backward_problem}


def specialise(kernel, values: dict, constants: dict):
    """(signature, constexprs, attrs) as Triton's launcher would build them for these argument values.

    ``values`` maps each runtime argument to a pointer type string ("*bf16") or an integer.
    """
    signature, constexprs, attrs = {}, dict(constants), {}
    for index, param in enumerate(kernel.params):
        if param.is_constexpr:
            signature[param.name] = "constexpr"
            continue
        value = values[param.name]
        if isinstance(value, str):
            signature[param.name] = value
            attrs[(index,)] = [["tt.divisibility", 16]]
        elif value == 1:
            signature[param.name] = "constexpr"
            constexprs[param.name] = 1
        else:
            signature[param.name] = "i64" if abs(value) >= 2**31 else "i32"
            if value % 16 == 0:
                attrs[(index,)] = [["tt.divisibility", 16]]
    return signature, constexprs, attrs


def compile_sm90(kernel, values: dict, constants: dict, num_warps: int = 1) -> bytes:
    """The kernel's cubin for sm_90 (no GPU or driver needed)."""
    signature, constexprs, attrs = specialise(kernel, values, constants)
    source = ASTSource(fn=kernel, signature=signature, constexprs=constexprs, attrs=attrs)
    compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32),
                              options={"num_warps": num_warps, "enable_fp_fusion": True})
    return compiled.asm["cubin"]


def _cuobjdump(cubin: bytes, flag: str) -> str:
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        return subprocess.run([str(tool), flag, f.name], capture_output=True, text=True, check=True).stdout


def resources(cubin: bytes) -> dict[str, int]:
    """Registers and stack bytes per thread (stack > 0 means spills or local arrays)."""
    text = _cuobjdump(cubin, "--dump-resource-usage")
    return {key.lower(): int(re.search(rf"{key}:(\d+)", text).group(1)) for key in ("REG", "STACK")}


def loops(sass: str) -> list[tuple[int, int, Counter]]:
    """(start, end, opcode counts) of every backward branch's body, innermost loops included."""
    instructions = [(int(a, 16), t.strip()) for a, t in re.findall(r"/\*([0-9a-f]{4,})\*/\s+([^;]+);", sass)]
    opcode = re.compile(r"(?:@!?U?P\w+\s+)?([A-Z0-9_]+(?:\.E(?:\.U16|\.64|\.128)?)?)")  # predicate, then name
    found = []
    for address, text in instructions:
        target = re.search(r"BRA\s.*?0x([0-9a-f]+)", text)
        if target and int(target.group(1), 16) < address:
            start = int(target.group(1), 16)
            body = [t for a, t in instructions if start <= a <= address]
            opcodes = Counter(opcode.match(t).group(1) for t in body)
            found.append((start, address, opcodes))
    return found


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kernel", choices=sorted(PROBLEMS))
    ap.add_argument("overrides", nargs="*", help="constexpr overrides, e.g. BLOCK_D=64 STATE_ONLY=1")
    ap.add_argument("--warps", type=int, default=1)
    ap.add_argument("--top", type=int, default=16, help="opcodes listed per loop")
    args = ap.parse_args(argv)
    kernel, values, constants = PROBLEMS[args.kernel]()
    for item in args.overrides:
        key, _, raw = item.partition("=")
        if key not in constants:
            ap.error(f"{key} is not a constexpr of the {args.kernel} kernel ({', '.join(constants)})")
        constants[key] = type(constants[key])(int(raw))
    cubin = compile_sm90(kernel, values, constants, args.warps)
    use = resources(cubin)
    print(f"{args.kernel} (Triton {triton.__version__}, sm_90): {use['reg']} registers, "
          f"{use['stack']} stack bytes")
    for start, end, opcodes in loops(_cuobjdump(cubin, "--dump-sass")):
        mix = ", ".join(f"{k}:{v}" for k, v in opcodes.most_common(args.top))
        print(f"  loop {start:#x}-{end:#x}: {sum(opcodes.values())} instructions; {mix}")
    return use


if __name__ == "__main__":
    main()
