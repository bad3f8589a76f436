#!/usr/bin/env bash
# The GPU check (issue 11 §4): run it on any GPU machine before trusting CUDA results. At most ~8 minutes on one GPU.
#   1. the CUDA-flagged tests (benchmarks/cuda_tests.py finds them: pytest tests skipped without CUDA, `#| cuda` cells);
#   2. benchmarks/bench_fit.py on the GPU (our fit epoch against the papers' plain loop; goal >= 3x);
#   3. benchmarks/gpu_models.py: one epoch of each paper model with AMP and channels_last, images/s and peak memory,
#      written with bench_fit's record to benchmarks/results/gpu.json (read by `reproduce --dry-run`).
# Usage:  bash benchmarks/gpu_check.sh          on a machine with a CUDA GPU (exit 2 with a message when there is none)
#         bash benchmarks/gpu_check.sh --cpu    dry run of the same steps on the CPU with tiny sizes; writes to
#                                               ${GPU_CHECK_OUT:-/tmp/gpu_check_dry}/, never to benchmarks/results/
# PYTHON picks the interpreter (default: .venv/bin/python when present, else python3).
# Exit status: 0 all passed; 1 a step failed or ran out of its time; 2 no CUDA device; 64 bad arguments.
set -u
cd "$(dirname "$0")/.."
DRY=0
for arg in "$@"; do
  case "$arg" in
    --cpu) DRY=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument '$arg' (allowed: --cpu, --help)" >&2; exit 64 ;;
  esac
done
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
# one interpreter start: "cuda <device name>" or "cpu <torch version> <CUDA version torch was built for>"
if ! PROBE=$("$PYTHON" -c 'import torch, robust_labels
print(f"cuda {torch.cuda.get_device_name()}" if torch.cuda.is_available() else f"cpu {torch.__version__} {torch.version.cuda}")' 2>/dev/null); then
  echo "gpu_check: $PYTHON cannot import torch and robust_labels; install the package (pip install -e '.[dev]') or set PYTHON" >&2
  exit 1
fi
if [ "$DRY" = 1 ]; then
  DEVICE=cpu; SIZES=tiny; OUTDIR="${GPU_CHECK_OUT:-/tmp/gpu_check_dry}"; mkdir -p "$OUTDIR"
  FIT_ARGS=(--device cpu --models cnn --n 64 --batch 32 --repeats 1 --out "$OUTDIR/fit.json")
  FIT_JSON="$OUTDIR/fit.json"; GPU_JSON="$OUTDIR/gpu.json"
  echo "gpu_check: --cpu dry run (tiny sizes, results in $OUTDIR)"
else
  if [ "${PROBE%% *}" != cuda ]; then
    read -r _ TV CV <<< "$PROBE"
    echo "gpu_check: no CUDA device: torch.cuda.is_available() is False on this machine (torch $TV, built for CUDA $CV)." >&2
    echo "gpu_check: run it on a machine with an NVIDIA GPU, or use --cpu for a dry run of its steps on the CPU." >&2
    exit 2
  fi
  DEVICE=cuda; SIZES=full; FIT_ARGS=(--device cuda); FIT_JSON=benchmarks/results/fit.json
  GPU_JSON=benchmarks/results/gpu.json
  echo "gpu_check: ${PROBE#cuda }"
fi
START=$SECONDS
FAILED=()
step() {  # step NAME SECONDS COMMAND...: run with a time limit, note a failure
  local name=$1 limit=$2; shift 2
  echo; echo "=== gpu_check: $name (limit ${limit} s, $((SECONDS - START)) s elapsed) ==="
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  if [ $rc = 124 ] || [ $rc = 137 ]; then echo "gpu_check: $name ran out of its ${limit} s" >&2; FAILED+=("$name (timed out)")
  elif [ $rc != 0 ]; then echo "gpu_check: $name failed (exit $rc)" >&2; FAILED+=("$name (exit $rc)"); fi
  return $rc
}

# 1. CUDA-flagged tests: on a GPU none of them may be skipped
mapfile -t TESTS < <("$PYTHON" benchmarks/cuda_tests.py --kind pytest)
mapfile -t NOTEBOOKS < <("$PYTHON" benchmarks/cuda_tests.py --kind notebooks)
echo "gpu_check: ${#TESTS[@]} CUDA-flagged tests, ${#NOTEBOOKS[@]} notebooks with #| cuda cells"
if [ ${#TESTS[@]} -gt 0 ]; then
  XML=$(mktemp --suffix=.xml)
  if step "CUDA tests" 120 "$PYTHON" -m pytest "${TESTS[@]}" -q -rs -p no:cacheprovider --junitxml="$XML" \
     && [ "$DRY" = 0 ] && grep -qE 'skipped="[1-9]' "$XML"; then
    echo "gpu_check: CUDA tests were skipped although a GPU is present" >&2; FAILED+=("CUDA tests (skipped)")
  fi
  rm -f "$XML"
fi
NBDEV_TEST="$(dirname "$PYTHON")/nbdev-test"; [ -x "$NBDEV_TEST" ] || NBDEV_TEST=nbdev-test
for nb in "${NOTEBOOKS[@]}"; do
  if [ "$DRY" = 1 ]; then echo "gpu_check: would run $NBDEV_TEST --path $nb --flags cuda"
  else step "notebook $nb" 120 "$NBDEV_TEST" --path "$nb" --flags cuda; fi
done

# 2. bench_fit on the device
step "bench_fit" 100 "$PYTHON" benchmarks/bench_fit.py "${FIT_ARGS[@]}"

# 3. one epoch of each paper model; gpu.json with bench_fit's record
step "paper models" 240 "$PYTHON" benchmarks/gpu_models.py --device "$DEVICE" --sizes "$SIZES" --bench-fit "$FIT_JSON" \
  --out "$GPU_JSON"

echo; echo "=== gpu_check: $((SECONDS - START)) s in all ==="
if [ ${#FAILED[@]} -gt 0 ]; then
  printf 'gpu_check: FAILED: %s\n' "${FAILED[@]}" >&2
  exit 1
fi
echo "gpu_check: all steps passed; results in $GPU_JSON"
