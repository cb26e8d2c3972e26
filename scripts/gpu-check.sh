#!/usr/bin/env bash
# The GPU checks of the model and training issues, in one short run on a device machine, from the
# repository root, with gpu-bin/ carried (scripts/prepare-gpu-check.sh builds it here):
#   1. `towerlab doctor`: libtorch sees the GPU;
#   2. CUDA training with bf16 (`precision = "bf16"`): the shipped pre-training experiment's MLM+ITM+ITC
#      arm and the demo's AAUE VQA run, shortened, with their metrics;
#   3. the BridgeTower training step at base size, bf16, against Hugging Face's BridgeTowerModel
#      on the same GPU (when the machine's Python has transformers, or TOWERLAB_PEER_PYTHONPATH
#      points at it).
# Everything lands in $OUT (or gpu-out/). Each part runs even when an earlier one failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-gpu-out}"
mkdir -p "$out"
torch_lib="$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib"
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
bin="$PWD/gpu-bin"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c 'import torch;print("python torch", torch.__version__, torch.version.cuda)' | tee -a "$out/gpu.txt"

echo "== 1. doctor"
"$bin/towerlab" doctor 2>&1 | tee "$out/doctor.txt"

echo "== 2. CUDA training, bf16"
db="$out/gpu.db"
( time "$bin/towerlab" run experiments/pretrain_synthetic.toml --db "$db" \
    --set device=cuda --set precision=bf16 --set 'loss_names=mlm,itm,itc' ) 2>&1 |
  tee "$out/pretrain.txt"
( time "$bin/towerlab" run experiments/demo.toml --db "$db" \
    --set device=cuda --set precision=bf16 --set manager_type=AAUE --set seed=0 ) 2>&1 |
  tee "$out/vqa.txt"
"$bin/towerlab" ls --db "$db" 2>&1 | tee "$out/runs.txt"

echo "== 3. BridgeTower training step, base size, bf16, CUDA"
if [ -z "${TOWERLAB_PEER_PYTHONPATH:-}" ]; then
  export TOWERLAB_PEER_PYTHONPATH="${PYTHONPATH:-}"
fi
python3 -c 'import transformers;print("transformers", transformers.__version__)' 2>&1 | tee -a "$out/gpu.txt"
for bf16 in 1 0; do
  TOWERLAB_BENCH_DEVICE=cuda TOWERLAB_BENCH_BF16=$bf16 TOWERLAB_BENCH_SHAPES=base,small \
    TOWERLAB_BENCH_STEPS=${TOWERLAB_BENCH_STEPS:-10} TOWERLAB_BENCH_ROUNDS=${TOWERLAB_BENCH_ROUNDS:-2} \
    "$bin/bt_train_step" --bench 2>&1 | tee "$out/bench-bf16-$bf16.txt"
done
