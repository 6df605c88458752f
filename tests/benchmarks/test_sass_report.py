"""benchmarks/sass_report.py compiles the scan kernels for sm_90 without a GPU and reads their SASS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

pytest.importorskip("triton", reason="triton is not installed (pip install -e '.[dev]' adds it); "
                    "the SASS report compiles the Triton kernels")
import sass_report  # noqa: E402


def test_specialise_marks_unit_strides_and_divisible_arguments_as_a_launch_would():
    params = [SimpleNamespace(name=n, is_constexpr=c)
              for n, c in [("u_ptr", False), ("stride_ud", False), ("stride_ul", False), ("length", False),
                           ("BLOCK_D", True)]]
    kernel = SimpleNamespace(params=params)
    values = {"u_ptr": "*bf16", "stride_ud": 1, "stride_ul": 512, "length": 1001}
    signature, constexprs, attrs = sass_report.specialise(kernel, values, {"BLOCK_D": 128})
    assert signature == {"u_ptr": "*bf16", "stride_ud": "constexpr", "stride_ul": "i32", "length": "i32",
                         "BLOCK_D": "constexpr"}
    assert constexprs == {"BLOCK_D": 128, "stride_ud": 1}
    assert attrs == {(0,): [["tt.divisibility", 16]], (2,): [["tt.divisibility", 16]]}  # 1001 is not


def test_report_compiles_the_forward_and_finds_its_walk():
    # Compiling needs real JIT functions, which the test session's TRITON_INTERPRET=1 replaces.
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    script = REPO / "benchmarks" / "sass_report.py"
    command = [sys.executable, str(script), "forward", "BLOCK_D=16", "STAGES=1"]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=True).stdout
    header, *loops = out.strip().splitlines()
    registers = int(header.split(": ")[1].split()[0])
    assert 0 < registers <= 255 and "sm_90" in header
    assert loops and any("MUFU" in line for line in loops)  # the walk's exponentials


def test_unknown_override_is_a_usage_error():
    with pytest.raises(SystemExit):
        sass_report.main(["backward", "NOT_A_CONSTEXPR=1"])
