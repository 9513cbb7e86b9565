#!/usr/bin/env bash
# GPU training throughput for BENCHMARKS.md: the cifar10 ConvNet and ResNet-50 (clipart B, from scratch,
# 224 px, 65 classes as in the course), float32 against mixed bfloat16, on synthetic images of each
# task's shape. Made for the lent GPU machine (JAX, no TensorFlow), one call from the repo root:
#   KERAS_BACKEND=jax bash scripts/gpu_benchmarks.sh OUT_DIR
# Keras is not installed there: carry its wheels (keras, namex, optree for CPython 3.12) as
# /work/.library/device/README.md describes, and install them first.
# CONVNET_IMAGES and RESNET_IMAGES set the synthetic images per timed epoch (small values test the script).
set -euo pipefail
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
out=${1:-benchmarks-gpu}
mkdir -p "$out"
clipart=$(mktemp -d)
trap 'rm -rf "$clipart"' EXIT
# clipart's class count comes from its class folders: 65 folders of one tiny image each.
python - "$clipart" <<'PY'
import sys
from pathlib import Path
from PIL import Image
for k in range(65):
    (Path(sys.argv[1]) / "train" / str(k)).mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(Path(sys.argv[1]) / "train" / str(k) / "0.png")
PY
python -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)" | tee "$out/versions.txt"
for precision in off bfloat16; do
  python -m kerascnn benchmark --task cifar10 --parts step --synthetic-images "${CONVNET_IMAGES:-12800}" \
    --repeats 2 --set mixed_precision=$precision | tee "$out/cifar10_$precision.txt"
  python -m kerascnn benchmark --task clipart_resnet50_scratch --data-dir "$clipart" --parts step \
    --synthetic-images "${RESNET_IMAGES:-4096}" --repeats 2 --set mixed_precision=$precision image_size=224 \
    | tee "$out/resnet50_$precision.txt"
done
