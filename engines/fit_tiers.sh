#!/usr/bin/env bash
# Fit both tiers at once, one GPU each (the 2-GPU device kind): the GPU tier (12 x 256) on
# GPU 0 and the CPU tier (4 x 256) on GPU 1 (or both on one GPU), from the same pack and recipe.
#   bash engines/fit_tiers.sh PACK OUT [extra engines.train flags...]
# Writes OUT/{gpu12,cpu4}.log, OUT/{gpu12,cpu4}_results.json and the float16 checkpoints cut
# into <= 15 MB parts (OUT/{gpu12,cpu4}_ckpt.part-aa ...; `cat` them back together).
# TIERS picks the fits, NAME:N_LAYER[:FLAG,FLAG...] each, spread over the GPUs in turn
# (default "gpu12:12 cpu4:4"); e.g. TIERS="cpu4:4 cpu4old:4:--rtd_weight=0,--lemon_mask=0"
# trains the CPU tier beside a same-seed ablation (per-tier flags override the shared ones).
# Each fit is killed after FIT_TIMEOUT seconds (default 560) so that the copies still happen;
# engines.train saves its sentence model before the essay stage.
set -uo pipefail
pack=$1; out=$2; shift 2
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
n_gpu=$(python3 -c 'import torch; print(torch.cuda.device_count())')
run() {  # name gpu n_layer
  CUDA_VISIBLE_DEVICES=$2 timeout "${FIT_TIMEOUT:-560}" python3 -m engines.train --stage fit --pack "$pack" \
    --out "/tmp/fit-$1" --n_layer "$3" --save_half true "${@:4}" > "$out/$1.log" 2>&1
  cp "/tmp/fit-$1/train_results.json" "$out/$1_results.json"
  split -b 15M "/tmp/fit-$1/ckpt.pt" "$out/$1_ckpt.part-"
}
# one GPU: all share it (the small models leave it mostly idle between kernel launches)
i=0
for spec in ${TIERS:-gpu12:12 cpu4:4}; do
  IFS=: read -r name layers extra <<< "$spec"
  run "$name" $((n_gpu > 1 ? i % n_gpu : 0)) "$layers" "$@" ${extra//,/ } &
  i=$((i + 1))
done
wait
tail -n 4 "$out"/*.log
