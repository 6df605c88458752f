#!/usr/bin/env bash
# One 10-minute device call that checks and times the kernels and the model on one GPU, in order of
# what the open issues wait for; each step has its own time limit, writes its JSON or log into $OUT
# as soon as it ends, and a step cut short leaves the others' results intact.
#
#   1. the GPU tests of the kernels, ops and model (structured decays included)       ~2 min
#   2. bench_scan.py: the scan at 2^12, 2^17 and 2^20 (2^20 tokens), time-major, full A and
#      the structured ones (--decays ladder scalar: one exponential per position, channel) ~1.5 min
#   3. bench_train.py: base-131k training step at 131,072 x 1 and 2^20 x 1, full, ladder and
#      scalar A, same run                                                              ~2 min
#   4. bench_streaming.py: 70 Mb in one exact pass (small-1k, base-131k), 20 GB plan,
#      equality at 1 and 8 Mb, streaming vs windowed throughput                        the rest
#
# Usage, on the device (carry .whl with the pyfaidx wheel, as suite_dev_gpu.sh):
#     LIMIT=570 bash benchmarks/kernels_dev_gpu.sh
# Peers (mamba_ssm, Caduceus) are not built here: their ~3-minute compile does not fit beside the
# rest; bench_scan.py / bench_train.py with --peer-sdist measure the ratios in a call of their own.
set -u
out=${OUT:-/tmp/kernels_dev}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
fi
[ -e genomamba/kernels ] || ln -s "$PWD/kernels" genomamba/kernels  # the wheel's layout, without installing
export PYTHONPATH=$PWD:/tmp/site
export GENOMAMBA_COMMIT=${GENOMAMBA_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
LIMIT=${LIMIT:-570}
start=$(date +%s)
left() { echo $((LIMIT - ($(date +%s) - start))); }
nvidia-smi -L | tee "$out/device.txt"

step() {  # step NAME SECONDS COMMAND...: run with at most SECONDS (or what is left), log to $out/NAME.log
  local name=$1 want=$2
  shift 2
  local have
  have=$(left)
  [ "$have" -gt "$want" ] || want=$have
  if [ "$want" -lt 20 ]; then
    echo "skipped $name: ${have}s left" | tee -a "$out/summary.txt"
    return
  fi
  local t0=$(date +%s)
  timeout -s INT "$want" "$@" > "$out/$name.log" 2>&1
  echo "$name: exit $? after $(($(date +%s) - t0))s" | tee -a "$out/summary.txt"
}

step gpu_tests 150 python3 -m pytest -q -m gpu -p no:cacheprovider tests/kernels tests/ops tests/model
tail -3 "$out/gpu_tests.log"
step bench_scan 110 python3 benchmarks/bench_scan.py --lengths 4096 131072 1048576 --layouts tm --decays ladder scalar \
  --json "$out/scan.json"
step bench_train 150 python3 benchmarks/bench_train.py --rows 131072x1 1048576x1 \
  --variants ours ours-ladder ours-scalar --deadline-s 130 --json "$out/train.json"
step bench_streaming 400 python3 benchmarks/bench_streaming.py --presets small-1k base-131k \
  --length 70000000 --max-gpu-memory 20G --json "$out/streaming.json"
cat "$out/summary.txt"
