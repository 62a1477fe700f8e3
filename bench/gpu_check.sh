#!/usr/bin/env bash
# Issue 12's GPU check, one script: the ResNet-18 pool as grouped ensembles against one model at
# a time (fp32, then bf16 + channels_last), and submission runs per hour with K workers on the
# GPU against 1. CIFAR-10's shapes (ResNet-18 width 64, 32x32 images, batch 128), random pixels.
# Usage: bench/gpu_check.sh [python]   (meant to take a few minutes on one H100/H200)
set -euo pipefail
py=${1:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
pool="--device cuda --width 64 --image-size 32 --batch-size 128 --train 4096 --sequential 2"
$py bench/bench_resnet_pool.py $pool --members 0 --cudnn-benchmark
$py bench/bench_resnet_pool.py $pool --members 16 --cudnn-benchmark
$py bench/bench_resnet_pool.py $pool --members 0 --cudnn-benchmark --precision bf16 --channels-last
$py bench/bench_runs_per_device.py --device cuda --task synthetic --width 64 --image-size 32 \
    --train 10000 --workers 1,2,4,8 --runs 16
