#!/usr/bin/env bash
# The GPU checks of issue 16 (item 3) as one short script, for a machine with one CUDA GPU and no Hub or ../shared:
#   1. a few Full training steps of the embedded demo (synthetic corpus, tiny random Whisper) through
#      examples/accelerate_configs/single_gpu.yaml, once with --bf16 and once with --fp16 (HF TrainingArguments'
#      mixed precision), each followed by the run's evaluation — every buffer, the GRL coefficient, the running
#      covariance, the target statistics and the temperature must follow the model onto the GPU;
#   2. the speed benchmark's heads and inference sections on the GPU, fp32 and bf16 (synthetic audio; the tiny
#      random Whisper unless BASE_MODEL names a real Whisper checkpoint folder).
# OUT_DIR receives 8 files: machine.txt (versions, GPU, one line per step), logs.txt (every command's output),
# train-<precision>.json (each run's evaluation results.json), speed-<device>-{fp32,bf16}.{json,md}. The run folders
# (checkpoints) stay in RUNS_DIR (default: a temporary folder).
#
#   bash benchmarks/gpu_check.sh OUT_DIR                       # on the GPU machine, from the repository root
#   DEVICE=cpu CONFIG=examples/accelerate_configs/cpu.yaml PRECISIONS=bf16 TRAIN_ARGS=--use_cpu \
#       bash benchmarks/gpu_check.sh /tmp/check               # the same path on a CPU (fp16 training needs a GPU)
set -euo pipefail
OUT=${1:?usage: bash benchmarks/gpu_check.sh OUT_DIR}
DEVICE=${DEVICE:-cuda}
CONFIG=${CONFIG:-examples/accelerate_configs/single_gpu.yaml}
PRECISIONS=${PRECISIONS:-bf16 fp16}
STEPS=${STEPS:-6}
PYTHON=${PYTHON:-python}
ACCELERATE=${ACCELERATE:-accelerate}
RUNS=${RUNS_DIR:-$(mktemp -d)}
read -r -a train_args <<< "${TRAIN_ARGS:-}"
mkdir -p "$OUT" "$RUNS"
export PYTHONUNBUFFERED=1
LOG="$OUT/logs.txt"
: > "$LOG"
step() {  # step NAME COMMAND...: run, append its output to logs.txt, note rc and seconds in machine.txt
  local name=$1 start rc=0; shift
  start=$(date +%s)
  echo "===== $name: $*" >> "$LOG"
  "$@" >> "$LOG" 2>&1 || rc=$?
  echo "$name: rc $rc, $(( $(date +%s) - start )) s" | tee -a "$OUT/machine.txt"
  return $rc
}
{ "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
  if command -v nvidia-smi > /dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; fi
} > "$OUT/machine.txt" 2>&1

for precision in $PRECISIONS; do
  step "train --$precision ($STEPS steps + evaluation)" "$ACCELERATE" launch --config_file "$CONFIG" \
      examples/train_ctrilora.py --preset full --max_steps "$STEPS" --logging_steps 1 --save_strategy no \
      --"$precision" "${train_args[@]}" --output_dir "$RUNS/train-$precision"
  cp "$RUNS/train-$precision/evaluation/results.json" "$OUT/train-$precision.json"
done

base=()
if [ -n "${BASE_MODEL:-}" ]; then base=(--base_model "$BASE_MODEL"); fi
for dtype in fp32 bf16; do
  flag=()
  if [ "$dtype" = bf16 ]; then flag=(--bf16); fi
  step "speed $DEVICE $dtype" "$PYTHON" benchmarks/benchmark_speed.py "${base[@]}" --device "$DEVICE" "${flag[@]}" \
      --sections heads inference --clip_seconds 4 --repeats 10 --warmup 3 \
      --output_json "$OUT/speed-$DEVICE-$dtype.json" --output_markdown "$OUT/speed-$DEVICE-$dtype.md"
done
echo "all checks finished: $OUT" | tee -a "$OUT/machine.txt"
