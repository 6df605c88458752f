#!/usr/bin/env bash
# Create (or update) the project's virtual environment and install genomamba into it.
#
# On a machine without an NVIDIA GPU a CPU build of torch is installed first, so that the
# unpinned "torch" requirement of the package is already satisfied and pip never pulls
# the multi-gigabyte CUDA wheels. Override the CPU pin with GENOMAMBA_CPU_TORCH.
set -euo pipefail
venv=${1:-.venv}
python=${PYTHON:-python3}

"$python" - <<'PY'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"genomamba needs Python >= 3.10, found {sys.version.split()[0]}")
PY

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "setup: NVIDIA GPU found; installing the default (CUDA) torch build" >&2
  "${pip[@]}" install "torch>=2.4"
else
  echo "setup: no NVIDIA GPU; installing the CPU torch build ${GENOMAMBA_CPU_TORCH:-torch==2.13.0}" >&2
  "${pip[@]}" install "${GENOMAMBA_CPU_TORCH:-torch==2.13.0}"
fi
# [dev] includes triton (the [gpu] extra of a plain install), so that the Triton kernel tests run in
# Triton's interpreter on machines without a GPU too.
"${pip[@]}" install -e ".[dev,pipelines]"
echo "setup: environment ready in $venv" >&2
