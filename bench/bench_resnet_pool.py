"""Benchmark: a ResNet-18-shaped pool trained as grouped ensembles vs one model after another.

    .venv/bin/python bench/bench_resnet_pool.py [--device cpu] [--width 8] [--image-size 16]
        [--members 8] [--batch-size 32] [--train 352] [--epochs 1] [--threads N]
        [--precision fp32|bf16] [--channels-last] [--cudnn-benchmark] [--vmap]

On a synthetic task (``harness.tasks.synthetic``: random CIFAR-format pixels, ResNet-18 of
``--width`` channels, the starting kit's recipe with crop-flip) it trains the same ``--members``
pool models once with ``ensemble.train_ensemble`` (one grouped network; ``--members 0``: as many
as ``ensemble.members_per_ensemble`` fits in memory) and once one at a time with
``pool.train_reference_model`` (the sequential path), on the same device and thread count, and
prints both in member-images per second (training only, timers synchronised with the device),
the ratio, and the hours a 512-model CIFAR-10 pool (45,000 retain images x 30 epochs per model)
would take at each rate (a projection that means something only at ``--width 64 --image-size
32``). ``--vmap`` also times the other way of batching members, ``torch.func.vmap`` over
``functional_call`` with stacked parameters and BatchNorm buffers, on the same batches.
It also prints the largest parameter difference between each member and its twin (rounding).

On a GPU (the real workload): ``--device cuda --width 64 --image-size 32 --batch-size 128
--members 0 --train 4096``. The CPU defaults take well under a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import time

import torch
from torch.func import functional_call, stack_module_state, vmap

from harness.reference.ensemble import (
    GROUPED,
    _augment_members,
    _ensemble_loss,
    _tensors,
    init_member,
    members_per_ensemble,
    train_ensemble,
)
from harness.reference.pool import train_reference_model
from harness.tasks.synthetic import synthetic_task
from harness.training.loop import synchronize

CIFAR_MEMBER_IMAGES = 45_000 * 30  # one CIFAR-10 pool model: retain images x epochs
POOL = 512


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def hours(rate: float) -> float:
    return POOL * CIFAR_MEMBER_IMAGES / rate / 3600


def vmap_seconds(task, data, indices: list[int]) -> float:
    """The same training through vmap(functional_call) with stacked buffers (the alternative to
    grouping: BatchNorm's running statistics update per member in place), with the same data
    gathering and augmentation per step (random orders: this times, it does not reproduce)."""
    device, recipe = task.device, task.recipe
    models = [init_member(task, i).to(device).train() for i in indices]
    params, buffers = stack_module_state(models)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    template = copy.deepcopy(models[0]).to("meta")
    optimizer = recipe.make_optimizer(list(params.values()))
    inputs, targets = (t.to(device) for t in _tensors(data.retain))
    k, n = len(indices), len(targets)
    generator = torch.Generator().manual_seed(0)
    augment = [torch.Generator().manual_seed(i) for i in indices]

    def call(p, b, x):
        return functional_call(template, (p, b), (x,))

    synchronize(device)
    start = time.perf_counter()
    for _ in range(recipe.epochs):
        order = torch.stack([torch.randperm(n, generator=generator) for _ in range(k)]).to(device)
        for first in range(0, n, recipe.batch_size):
            batch = order[:, first : first + recipe.batch_size]
            x = inputs.index_select(0, batch.reshape(-1)).view(*batch.shape, *inputs.shape[1:])
            y = targets.index_select(0, batch.reshape(-1)).view(batch.shape)
            if recipe.augment == "crop-flip":
                x = _augment_members(x, augment)
            with recipe.autocast(device):
                logits = vmap(call)(params, buffers, x)
            loss = _ensemble_loss(logits.float(), y, None)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    synchronize(device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=int, default=8, help="ResNet-18 width (64: the real one)")
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--members", type=int, default=8,
                        help="members of the ensemble (0: as many as fit in memory)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train", type=int, default=352, help="training images (10%% forget)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--cudnn-benchmark", action="store_true")
    parser.add_argument("--sequential", type=int, default=None,
                        help="members also trained one at a time (default: all)")
    parser.add_argument("--vmap", action="store_true", help="also time vmap(functional_call)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    task = synthetic_task(
        width=args.width, image_size=args.image_size, num_train=args.train, num_held_out=32,
        device=args.device,
    )
    task = task.with_options(recipe=dataclasses.replace(
        task.recipe, epochs=args.epochs, batch_size=args.batch_size, precision=args.precision,
        channels_last=args.channels_last, cudnn_benchmark=args.cudnn_benchmark,
    ))
    data = task.load_data()
    k = args.members or members_per_ensemble(task, data, GROUPED)
    indices = list(range(k))
    member_images = len(data.retain_idx) * args.epochs
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    print(f"device {args.device} ({name}); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {load()}")
    print(f"ResNet-18 width {args.width}, {args.image_size}x{args.image_size} images, batch "
          f"{args.batch_size}, {len(data.retain_idx)} retain images x {args.epochs} epoch(s); "
          f"{k} members; {args.precision}"
          f"{', channels_last' if args.channels_last else ''}"
          f"{', cudnn.benchmark' if args.cudnn_benchmark else ''}")

    # off the clock: lazy initialisation, kernels chosen, a first grouped network built
    warm = task.with_options(recipe=dataclasses.replace(task.recipe, epochs=1))
    train_ensemble(warm, data, indices[:2], GROUPED)
    train_reference_model(warm, data, 0)

    ensemble, grouped = train_ensemble(task, data, indices, GROUPED)
    if args.device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated(args.device) / 2**30
        print(f"peak GPU memory {peak:.2f} GiB (the grouped ensemble's)")
    print(f"after grouped: {load()}")
    singles = indices[: args.sequential or k]
    one_at_a_time, twins = 0.0, []
    for index in singles:
        model, seconds = train_reference_model(task, data, index)
        one_at_a_time += seconds
        twins.append(model)
    print(f"after one at a time: {load()}")

    rate_grouped = k * member_images / grouped
    rate_single = len(singles) * member_images / one_at_a_time
    print(f"grouped ensemble : {rate_grouped:10.0f} member-images/s "
          f"({grouped:.2f} s for {k} members); 512-model CIFAR-10 pool at this rate: "
          f"{hours(rate_grouped):.1f} h")
    print(f"one at a time    : {rate_single:10.0f} member-images/s "
          f"({one_at_a_time:.2f} s for {len(singles)} models); 512-model pool: "
          f"{hours(rate_single):.1f} h")
    print(f"ratio            : {rate_grouped / rate_single:.2f}x")
    if args.vmap:
        seconds = vmap_seconds(task, data, indices)
        rate = k * member_images / seconds
        print(f"vmap (buffers)   : {rate:10.0f} member-images/s ({seconds:.2f} s); "
              f"{rate / rate_single:.2f}x one at a time")
    relative = sorted(
        ((a.double() - b.double()).norm().item() / max(a.double().norm().item(), 1e-12), name)
        for twin, member in zip(twins, ensemble.unstack(), strict=False)
        for (name, a), b in zip(twin.state_dict().items(), member.state_dict().values(),
                                strict=True)
        if a.is_floating_point()
    )
    middle, (worst, where) = relative[len(relative) // 2][0], relative[-1]
    print(f"check            : |member - twin| / |twin| per tensor: median {middle:.1e}, largest "
          f"{worst:.1e} ({where}); float32 rounding amplified by training (tests/"
          "test_ensemble.py shows members equal to their twins in float64)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
