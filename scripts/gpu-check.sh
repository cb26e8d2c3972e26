#!/usr/bin/env bash
# The GPU checks of the model and training issues, in one short run on a device machine, from the
# repository root, with gpu-bin/ carried (scripts/prepare-gpu-check.sh builds it here):
#   1. `towerlab doctor`: libtorch sees the GPU and loaded its CUDA backend;
#   2. the BridgeTower training step at base size (and small), bf16 and fp32, against Hugging
#      Face's BridgeTowerModel on the same GPU (when the machine's Python has transformers, or
#      TOWERLAB_PEER_PYTHONPATH points at it);
#   3. CUDA training with bf16 (`precision = "bf16"`): the demo's AAUE VQA run and the shipped
#      pre-training experiment's MLM+ITM+ITC arm, with their metrics and `show` (MFU, memory).
# Everything lands in $OUT (or gpu-out/). Each part runs even when an earlier one failed, and
# each has a time cap (device time is short; GPU_CHECK_BENCH_CAP, GPU_CHECK_TRAIN_CAP seconds),
# so a hang in one still returns the others.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-gpu-out}"
mkdir -p "$out"
torch_lib="$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib"
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
bin="$PWD/gpu-bin"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c 'import torch;print("python torch", torch.__version__, torch.version.cuda)'
  python3 -c 'import transformers;print("transformers", transformers.__version__)' 2>&1
  nproc
} | tee "$out/gpu.txt"

echo "== 1. doctor"
timeout 60 "$bin/towerlab" doctor 2>&1 | tee "$out/doctor.txt"

echo "== 2. BridgeTower training step, CUDA, bf16 then fp32"
if [ -z "${TOWERLAB_PEER_PYTHONPATH:-}" ]; then
  export TOWERLAB_PEER_PYTHONPATH="${PYTHONPATH:-}"
fi
for bf16 in 1 0; do
  TOWERLAB_BENCH_DEVICE=cuda TOWERLAB_BENCH_BF16=$bf16 \
    TOWERLAB_BENCH_SHAPES=${TOWERLAB_BENCH_SHAPES:-base,small} \
    TOWERLAB_BENCH_STEPS=${TOWERLAB_BENCH_STEPS:-10} TOWERLAB_BENCH_ROUNDS=${TOWERLAB_BENCH_ROUNDS:-2} \
    timeout "${GPU_CHECK_BENCH_CAP:-150}" "$bin/bt_train_step" --bench 2>&1 | tee "$out/bench-bf16-$bf16.txt"
done

echo "== 3. CUDA training, bf16"
# Outside $OUT (the device returns at most 8 files); fresh, so a rerun on a warm machine trains again.
db=/tmp/towerlab-gpu.db
rm -rf "$db" "$db-wal" "$db-shm" /tmp/runs
( time timeout "${GPU_CHECK_TRAIN_CAP:-150}" "$bin/towerlab" run experiments/demo.toml --db "$db" \
    --set device=cuda --set precision=bf16 --set num_workers=6 --set manager_type=AAUE --set seed=0 ) 2>&1 |
  tee "$out/vqa.txt"
( time timeout "${GPU_CHECK_TRAIN_CAP:-150}" "$bin/towerlab" run experiments/pretrain_synthetic.toml \
    --db "$db" --set device=cuda --set precision=bf16 --set num_workers=6 --set 'loss_names=mlm,itm,itc' ) 2>&1 |
  tee "$out/pretrain.txt"
# The runs' cost lines (throughput, MFU against the GPU's peak, GPU memory from the allocator and
# NVML): what the telemetry issue asks of a GPU.
{ "$bin/towerlab" ls --db "$db"; for id in 1 2; do "$bin/towerlab" show "$id" --db "$db"; done; } 2>&1 |
  tee "$out/runs.txt"
