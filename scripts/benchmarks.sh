#!/usr/bin/env bash
# Every figure of BENCHMARKS.md, in the order it lists them. Run on a quiet machine from the repo root,
# with ../shared beside it and PyTorch in $HOME/torchref (see ../shared/bench/README.md):
#   bash scripts/benchmarks.sh 2>/dev/null | tee benchmarks.log
set -euo pipefail
D=../shared/data
python scripts/compare_torch.py --workload cifar-convnet --rounds 3
python scripts/compare_torch.py --workload cifar-convnet --rounds 1 --set fast_conv_grad=false
python scripts/compare_torch.py --workload cifar-convnet-bn --rounds 1
python scripts/compare_torch.py --workload artists --rounds 9  # same work as torch_ref, and validating every epoch
TF_ENABLE_ONEDNN_OPTS=0 python scripts/compare_torch.py --workload artists --rounds 2
# TensorFlow's oneDNN kernels (the default kerascnn sets) against its Eigen kernels, per task, alternating
for row in "cifar10 800" "cifar10_bn 400" "caltech101_lenet 512" "caltech101_improved 512" "caltech101_resnet18 256" \
           "clipart_own 128 --data-dir $D/clipart" "clipart_resnet50_scratch 64 --data-dir $D/clipart" \
           "faces_alexnet_finetune 64 --data-dir $D/faces"; do
  set -- $row
  for onednn in 1 0 1 0; do
    TF_ENABLE_ONEDNN_OPTS=$onednn python -m kerascnn benchmark --task $1 --parts step --synthetic-images $2 "${@:3}"
  done
done
TF_ENABLE_ONEDNN_OPTS=0 python scripts/bench_conv_grad.py --repeats 10
python scripts/compare_torch.py --workload artists --rounds 1 --set train_loop=fit
python scripts/bench_graph_loop.py --set model.pooling=true model.pool_size=2 model.pool_strides=2
python scripts/bench_conv_grad.py --repeats 10
python -m kerascnn benchmark --task artists --parts step run --data-dir $D/artists
python -m kerascnn benchmark --task artists --parts step --set model.pooling=true model.pool_size=2 model.pool_strides=2
python -m kerascnn benchmark --task caltech101_improved --parts decode pipeline step --data-dir $D/caltech101
python -m kerascnn benchmark --task clipart_own --parts decode pipeline --data-dir $D/clipart
python -m kerascnn benchmark --task faces_mlp --parts decode pipeline step --data-dir $D/faces/crops
for loop in auto fit; do
  python -m kerascnn benchmark --task faces_mlp --parts run --data-dir $D/faces/crops --set train_loop=$loop
  python -m kerascnn benchmark --task caltech101_improved --parts run --data-dir $D/caltech101 --set train_loop=$loop epochs=2
done
