#!/usr/bin/env bash
# One job of a genomamba pretraining run on the device machine: one 10-minute call = one job.
#
# The device has no network, no snakemake and no Biopython, so the corpus travels packed (here,
# once: `python scripts/pack_corpus.py pack` -> .carry/corpus) and the run travels between calls
# in .carry/run (here, after each call: `python scripts/pack_corpus.py take-back FILES_AT`).
# Carry [".carry"] (".whl" too if it holds wheels; the job needs none) and run
#     GENOMAMBA_COMMIT=<commit> LIMIT=570 bash benchmarks/pretrain_dev_gpu.sh
# A job: unpack the corpus and check every sha256; tokenise each genome as pipelines/tokenize.smk
# does (the shards are byte-identical to the pipeline's); `genomamba pretrain` with the options
# pipelines/pretrain.smk gives (config/pretrain_corpus.yaml: small-1k, 1,024-base crops, the
# held-out shards as --val-data), --resume from the carried run, stopped by SIGTERM before LIMIT
# so that it writes a checkpoint; then $OUT gets what the next job needs, at most 8 files of at
# most 16 MiB: run_config.json, metrics.jsonl, val_metrics.jsonl, job.log and the newest
# checkpoints/step-N/ (keep_checkpoints: 1), or model/ instead once the run has finished.
# Runbook: docs/pretraining.md, "How the shipped models are being trained (device jobs)".
#
# Environment: LIMIT (seconds the whole job may take, 540), RESERVE (seconds kept after training
# for the checkpoint and the copy, 45), GENOMAMBA_COMMIT (named in the log where the tree has no
# .git), DEVICE (cuda), THREADS (8), JOBS (tokenise in parallel, 4), GENOMES (a subset,
# space-separated; default every genome of the config), DETERMINISTIC=1 (--deterministic; fixed
# for a whole run), PRETRAIN_EXTRA (options appended to the config's, the last one wins: e.g.
# "--preset tiny --max-steps 8 --batch-size 2" for a CPU trial), PYTHON (python3), WORK
# (/tmp/pretrain_job), CORPUS (.carry/corpus), RUN_IN (.carry/run).
set -u -o pipefail
start=$SECONDS
LIMIT=${LIMIT:-540}
RESERVE=${RESERVE:-45}
PYTHON=${PYTHON:-python3}
work=${WORK:-/tmp/pretrain_job}
out=${OUT:-$work/out}
corpus=${CORPUS:-.carry/corpus}
carried=${RUN_IN:-.carry/run}
config=config/pretrain_corpus.yaml
mkdir -p "$work" "$out"

job() {
  if compgen -G ".whl/*.whl" > /dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || return 1
  fi
  export PYTHONPATH=$PWD:/tmp/site PATH=/tmp/bin:$PATH
  # the wheel's layout without installing (where no installed genomamba provides genomamba.kernels)
  "$PYTHON" -c "import genomamba.kernels" 2> /dev/null || ln -s "$PWD/kernels" genomamba/kernels
  mkdir -p /tmp/bin
  printf '#!/bin/sh\nexec %s -c "from genomamba.cli import main; main()" "$@"\n' "$(command -v "$PYTHON")" \
    > /tmp/bin/genomamba
  chmod +x /tmp/bin/genomamba
  nvidia-smi -L 2> /dev/null
  echo "commit: $(git rev-parse --short HEAD 2> /dev/null || echo "${GENOMAMBA_COMMIT:-unknown}")"
  if [ -d "$carried/model" ]; then
    echo "$carried holds model/: the run has finished; nothing to do"
    return 0
  fi
  local only=() g
  for g in ${GENOMES:-}; do only+=(--genome "$g"); done
  "$PYTHON" scripts/pack_corpus.py unpack --corpus "$corpus" --dest "$work/corpus" "${only[@]}" || return 1
  "$PYTHON" scripts/pack_corpus.py tokenize --config "$config" --corpus "$corpus" --dest "$work/corpus" \
    --jobs "${JOBS:-4}" "${only[@]}" || return 1
  echo "corpus ready after $((SECONDS - start)) s"

  local run=$work/run first=0
  rm -rf "$run"
  if [ -f "$carried/run_config.json" ]; then
    mkdir -p "$run" && cp -r "$carried/." "$run/"
    # take-back carries the metrics xz-compressed
    "$PYTHON" -c 'import lzma, pathlib, sys
for p in pathlib.Path(sys.argv[1]).glob("*.jsonl.xz"):
    p.with_suffix("").write_bytes(lzma.decompress(p.read_bytes())); p.unlink()' "$run" || return 1
    first=$(ls "$run/checkpoints" | sort | tail -n 1)
    first=$((10#${first#step-}))
    echo "resuming from step $first"
  fi
  printf 'keep_checkpoints: 1\n' > "$work/run.yaml"  # one checkpoint's files to bring back
  local args extra=()
  mapfile -t args < <("$PYTHON" scripts/pack_corpus.py pretrain-args --config "$config" \
    --dest "$work/corpus" "${only[@]}")
  [ "${DETERMINISTIC:-0}" = 1 ] && extra+=(--deterministic)
  read -r -a more <<< "${PRETRAIN_EXTRA:-}"
  local budget=$((LIMIT - (SECONDS - start) - RESERVE))
  echo "training for at most $budget s"
  set -x
  timeout --preserve-status -s TERM -k 30 "$budget" genomamba pretrain "${args[@]}" --out "$run" --resume \
    --config "$work/run.yaml" --device "${DEVICE:-cuda}" --threads "${THREADS:-8}" "${extra[@]}" "${more[@]}"
  local rc=$?
  { set +x; } 2> /dev/null
  echo "genomamba pretrain exit $rc (0 finished, 143 stopped by SIGTERM after its checkpoint)"

  # what the next job needs, at most 8 files of at most 16 MiB
  local f newest
  for f in run_config.json metrics.jsonl val_metrics.jsonl; do
    [ -f "$run/$f" ] && cp "$run/$f" "$out/"
  done
  if [ "$rc" = 0 ] && [ -d "$run/model" ]; then
    mkdir -p "$out/model" && cp "$run/model/"* "$out/model/"
  else
    newest=$(ls -d "$run"/checkpoints/step-* 2> /dev/null | sort | tail -n 1)
    [ -n "$newest" ] || { echo "no checkpoint was written"; return 1; }
    mkdir -p "$out/checkpoints/${newest##*/}" && cp "$newest"/* "$out/checkpoints/${newest##*/}/"
  fi
  "$PYTHON" - "$run/metrics.jsonl" "$first" "$((SECONDS - start))" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
mine = [r for r in rows if r["step"] > int(sys.argv[2])]  # this job's steps (elapsed_s restarts)
last = rows[-1]
rate = sum(r["tokens"] for r in mine) / mine[-1]["elapsed_s"] if mine else 0
print(f"step {last['step']}: loss {last['loss']:.4f}, accuracy {last['accuracy']:.4f}; this job: "
      f"{len(mine)} steps, {rate:,.0f} tokens/s over its training time; the run so far: "
      f"{sum(r['tokens'] for r in rows):,} tokens; job took {sys.argv[3]} s")
EOF
  [ "$rc" = 0 ] || [ "$rc" = 143 ]
}

job 2>&1 | tee "$work/job.log"
rc=${PIPESTATUS[0]}
cp "$work/job.log" "$out/job.log"
files=$(find "$out" -type f | wc -l)
big=$(find "$out" -type f -size +16M)
echo "$files files in $out${big:+; over 16 MiB: $big}"
[ "$files" -le 8 ] && [ -z "$big" ] || rc=1
exit "$rc"
