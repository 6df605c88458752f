#!/usr/bin/env bash
# genomamba's recipes on the development suite on one GPU machine, within one 10-minute device call.
#
# The device machine gets a copy of the working tree only: copy the suite into the ignored .carry/
# (cp -r ../shared/benchmarks .carry/suite) and the pyfaidx wheel into .whl/ (see the device notes
# in docs/benchmarks.md), carry both, and run
#     LIMIT=480 bash benchmarks/suite_dev_gpu.sh .carry/suite
# (RESUME=docs/raw/results_small1k_gpu_h100.csv continues from the rows of the last call)
# The small tasks run 3 seeds per method in one process per method; each large task is a process
# of its own. results.csv, results.md and the logs come back in $OUT; rerunning with the returned
# results.csv in OUT resumes. The CPU baselines (docs/results.md) are appended to the same table.
set -u
suite=${1:?usage: suite_dev_gpu.sh SUITE_DIR}
out=${BENCH_OUT:-/tmp/suite_dev}
# RESUME=docs/raw/results_small1k_gpu_h100.csv (a committed results.csv of an earlier call):
# genomamba benchmark skips every (task, method, seed) it already holds
if [ -n "${RESUME:-}" ] && [ ! -e "$out/results.csv" ]; then
  mkdir -p "$out" && cp "$RESUME" "$out/results.csv" || exit 1
fi
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
[ -e genomamba/kernels ] || ln -s "$PWD/kernels" genomamba/kernels  # the wheel's layout, without installing
export PYTHONPATH=$PWD:/tmp/site PATH=/tmp/bin:$PATH
mkdir -p /tmp/bin
printf '#!/bin/sh\nexec python3 -c "from genomamba.cli import main; main()" "$@"\n' > /tmp/bin/genomamba
chmod +x /tmp/bin/genomamba
nvidia-smi -L
LIMIT=${LIMIT:-480}
SMALL="GUE_EMP_H3 GUE_EMP_H4 GUE_prom_300_tata GUE_splice_reconstructed"
LARGE="GUE_tf_human_0 GUE_tf_human_1 GUE_tf_human_2 GUE_tf_human_3 GUE_tf_human_4 GUE_prom_core_all"
# attention pooling was measured (docs/results.md): no better than mean; binned pooling is the
# position-aware candidate for the short aligned tasks (promoters, splice sites)
TASKS="$SMALL" bash benchmarks/suite_parallel.sh "$suite" "$out" "$LIMIT" 1,2,3 \
  "finetune:small-1k" "finetune:small-1k,pooling=binned" &
SPLIT_TASKS=1 TASKS="$LARGE" bash benchmarks/suite_parallel.sh "$suite" "$out" "$LIMIT" 1,2,3 "finetune:small-1k" &
wait
genomamba benchmark "$suite" --out "$out" --report-only --published data_manifests/tasks/gue_published.yaml
cp "$out/results.csv" "$out/results.md" "${OUT:-$out}/" 2>/dev/null
tar czf "${OUT:-$out}/logs.tgz" -C "$out" logs
cat "$out/results.md"
