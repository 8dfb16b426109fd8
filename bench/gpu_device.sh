#!/bin/bash
# The one device call of issue 10 (H200), run from the checkout root by the device tool:
#   .carry-gpu/      this worktree (code + bench), without .git and engines/zh
#   .carry-gpu/_site jieba without its unused data (pure Python)
#   .carry-gpu/_data zh essays for the load generator; _gate/fp32.json the FP32 reference
#   .whl/            starlette, uvicorn, websockets, orjson, py-spy wheels (cp312)
# Writes at most 8 files under $OUT (the tool's limit).
set -u
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
ROOT=$PWD
export PYTHONPATH=/tmp/site:$ROOT/.carry-gpu/_site:$ROOT/.carry-gpu PATH=/tmp/site/bin:$PATH
mkdir -p shared && ln -sfn ../.carry-gpu/_data shared/data
cd .carry-gpu && ln -sfn ../../engines/zh engines/zh
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
timeout "${TEST_S:-120}" python3 -m pytest -q -p no:cacheprovider -rs tests/test_backends_gpu.py \
    2>&1 | tee "$OUT/pytest.log"
timeout "${BENCH_S:-330}" python3 bench/gpu.py --out "$OUT" --gate-reference _gate/fp32.json \
    --server-points "${POINTS:-torch:250,onnxruntime:250,torch:1000,torch:50,onnxruntime:50,torch:1,onnxruntime:1}" \
    --server-duration "${DURATION:-25}" --deadline-s "${DEADLINE_S:-250}" 2>&1 | tee "$OUT/bench.log"
tar czf "$OUT/server.tgz" -C /tmp inkstone-gpu-server 2>/dev/null
ls -la "$OUT"
