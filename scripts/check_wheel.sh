#!/usr/bin/env bash
# What `pip install genomamba[pipelines]` gives a user, checked end to end (run by .ci/run).
#
# Builds the wheel, installs it into a fresh virtual environment (a CPU build of torch first, then
# the wheel with its [pipelines] extra; no [dev], so no triton) and, from a scratch folder outside
# the source tree so nothing can import from the checkout, runs:
#   genomamba doctor
#   genomamba workflow init wf, then the demo pipeline in wf (snakemake --cores 2)
#   genomamba embed / predict / score-variants by hand with the pipeline's trained models and options
#   on parts of the pipeline's inputs; their tables must match the pipeline's rows for those parts.
# Needs PyPI (build requirements, dependencies). The scratch folder is removed on success and kept,
# with its path printed, on failure. Environment: PYTHON (default python3); GENOMAMBA_CPU_TORCH
# (default torch==2.13.0, as in scripts/setup_env.sh).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
torch_pin=${GENOMAMBA_CPU_TORCH:-torch==2.13.0}
work=$(mktemp -d "${TMPDIR:-/tmp}/genomamba-check-wheel.XXXXXX")
venv=$work/venv
wf=$work/run/wf
step=start
pipeline_step="the demo pipeline (snakemake --cores 2 --configfile config/demo.yaml)"
started=$SECONDS

say() { echo "check_wheel: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }
next() { step=$1; say "[$((SECONDS - started)) s] $step"; }

on_exit() {
  local status=$?
  if [ "$status" -eq 0 ]; then
    rm -rf "$work"
    return
  fi
  say "FAILED at step '$step' (exit $status) after $((SECONDS - started)) s; scratch folder kept: $work"
  # the pipeline's rules write their output to logs: show the newest ones
  if [ "$step" = "$pipeline_step" ] && [ -d "$wf/results" ]; then
    find "$wf/results" -name '*.log' -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -n 3 | cut -d' ' -f2- |
      while read -r log; do say "--- last lines of $log"; tail -n 25 "$log" >&2; done
  fi
}
trap on_exit EXIT

case "$work/" in "$repo"/*) fail "scratch folder $work is inside the source tree $repo; set TMPDIR" ;; esac
unset PYTHONPATH  # nothing may reach the checkout

next "create a fresh virtual environment in $venv"
"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)

next "build the wheel (pip wheel --no-deps)"
# build/ and the egg-info go to the scratch folder: a reused build/ could carry stale files into the wheel
printf '[build]\nbuild_base = %s\n[egg_info]\negg_base = %s\n' "$work/build" "$work" >"$work/build.cfg"
DIST_EXTRA_CONFIG=$work/build.cfg "${pip[@]}" wheel --no-deps -w "$work/dist" "$repo"
wheels=("$work"/dist/genomamba-*.whl)
[ "${#wheels[@]}" -eq 1 ] && [ -f "${wheels[0]}" ] || fail "expected one genomamba wheel in $work/dist"
wheel=${wheels[0]}
say "built $(basename "$wheel") ($(du -k "$wheel" | cut -f1) kB)"

next "install $torch_pin, then the wheel with [pipelines]"
"${pip[@]}" install "$torch_pin"
"${pip[@]}" install "$wheel[pipelines]"
export PATH="$venv/bin:$PATH"
if "$venv/bin/python" -m pip show triton >/dev/null 2>&1; then
  fail "triton is installed in the fresh environment: it must stay an optional extra ([gpu])"
fi
"$venv/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("triton") is not None)' ||
  fail "triton is importable in the fresh environment"

mkdir -p "$work/run"
cd "$work/run"
next "genomamba doctor"
[ "$(command -v genomamba)" = "$venv/bin/genomamba" ] || fail "genomamba on PATH is $(command -v genomamba)"
location=$("$venv/bin/python" -c 'import genomamba; print(genomamba.__file__)')
case "$location" in "$venv"/*) ;; *) fail "genomamba is imported from $location, not the fresh environment" ;; esac
genomamba doctor | tee "$work/doctor.txt"
grep -q "^triton not installed" "$work/doctor.txt" || fail "doctor does not report triton as not installed"
grep -q "^scan backend on cpu: chunked" "$work/doctor.txt" || fail "doctor reports no chunked CPU scan"

next "genomamba workflow init wf"
genomamba workflow init wf
[ -f wf/Snakefile ] && [ -f wf/config/demo.yaml ] && [ -f wf/data/demo/yeast_chrI_chrII.fa ] ||
  fail "workflow init wrote an incomplete workflow into $wf"

next "$pipeline_step"
(cd wf && snakemake --cores 2 --configfile config/demo.yaml)

next "genomamba embed, predict and score-variants by hand with the pipeline's models"
run=$wf/results/demo
yeast=$run/genomes/yeast_chrI_chrII/yeast_chrI_chrII.fa
for f in "$run/pretrain/model/config.json" "$run/finetune/run/model/config.json" "$yeast" \
  "$run/predict/yeast_chrI_chrII.tsv"; do
  [ -f "$f" ] || fail "the pipeline did not produce $f"
done
# Options as in pipelines/apply.smk and pipelines/variants.smk with config/demo.yaml; small inputs
# (one phage genome, 100 of the windows the pipeline predicted, 10 VCF lines) keep this step short.
genomamba embed "$run/pretrain/model" "$run/genomes/lambda/lambda_virus.fa.bgz" -o embed.parquet \
  --window 1024 --last keep --pooling mean
awk -F'\t' 'NR > 1 && NR <= 101 {print $2 "\t" $3 "\t" $4 "\twindow" NR - 1}' \
  "$run/predict/yeast_chrI_chrII.tsv" >windows.bed
genomamba predict "$run/finetune/run/model" --bed windows.bed --genome "$yeast" -o predict.tsv
awk '/^#/ || n++ < 10' "$run/genomes/yeast_chrI_chrII/yeast_chrI_snvs.vcf" >snvs.vcf
genomamba score-variants "$run/pretrain/model" snvs.vcf --genome "$yeast" -o variants.tsv --window 1024

next "compare with the pipeline's tables"
"$venv/bin/python" - "$run" <<'PY'
import sys

import pandas as pd

run = sys.argv[1]
pairs = [  # mine, the pipeline's, rows expected
    ("embed.parquet", f"{run}/embed/lambda.parquet", 48),
    ("predict.tsv", f"{run}/predict/yeast_chrI_chrII.tsv", 100),
    ("variants.tsv", f"{run}/variants/yeast_chrI_chrII/yeast_chrI_snvs.tsv", 30),
]
for mine, theirs, rows in pairs:
    read = pd.read_parquet if mine.endswith(".parquet") else (lambda p: pd.read_csv(p, sep="\t"))
    a, b = read(mine), read(theirs)
    # the pipeline's first rows are the same windows or SNVs; file names differ, --bed adds name, strand
    columns = [c for c in b.columns if c != "file" and c in a.columns]
    if len(a) != rows or len(columns) < 4:
        sys.exit(f"check_wheel: {mine}: {len(a)} rows, columns {list(a.columns)}; expected {rows} rows "
                 f"and the columns of {theirs}")
    pd.testing.assert_frame_equal(a[columns], b[columns].head(rows), check_exact=False, rtol=1e-4, atol=1e-5)
    print(f"check_wheel: {mine}: {rows} rows, {len(columns)} columns as in {theirs}", file=sys.stderr)
PY

say "OK in $((SECONDS - started)) s: wheel built, installed without triton, workflow init + demo pipeline," \
  "embed/predict/score-variants from $venv"
