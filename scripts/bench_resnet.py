"""One epoch of ResNet-20 (TH Table 4.1 problem (a): CIFAR-10 shape, batch 128, SGD, weight decay 1e-4 as a loss
term) on random CIFAR-shaped data, five ways side by side in one run:

1. ``host``: ``optrepro.train.run`` on the preset with the dataset in host memory (``task.on_device=false``): batches
   drawn and augmented there by tensor operations, then copied to the device (the project's loaders use no
   DataLoader workers; on a CPU this and ``on_device`` are the same path);
2. ``on_device``: the same with the dataset held on the device (``task.on_device=true``);
3. ``compiled``: on-device plus ``trainer.compile=true``;
4. ``plain``: a plain PyTorch loop, data on the device, no Lightning: the reference;
5. ``plain_compiled``: the plain loop with ``torch.compile(model)`` (the reference for ``compiled``).

On a GPU every way runs full epochs (50,000 images, 391 steps); on a CPU a reduced number of batches (``--batches``,
default 20) and the seconds per epoch are extrapolated to 391 steps. The Lightning ways are timed as the difference
between a run of three epochs and a run of one, halved, so start-up, data building and compilation are left out
(the compiled way first makes an untimed run, so both timed runs find the compiler's caches warm);
their epochs include the test-split evaluation, the plain loop's do not. Prints seconds per epoch and the ratios to
the plain loop.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from optrepro.config import compose
from optrepro.models import ResNet20
from optrepro.train import run

TRAIN, BATCH, WEIGHT_DECAY = 50_000, 128, 1.0e-4
STEPS = math.ceil(TRAIN / BATCH)


def resnet_overrides(batches: int | None, gpu: bool, extra: list[str] = ()) -> list[str]:
    """TH problem (a) on generated CIFAR-shaped data: ``batches`` batches of 128 per epoch (None: 50,000 images)."""
    samples = TRAIN if batches is None else batches * BATCH
    return [
        "experiment=th/f4_4a",
        "optimizer=sgd",
        "optimizer.lr=0.1",
        "task.synthetic=true",
        f"task.max_train_samples={samples}",
        f"task.synthetic_size={samples}",
        f"trainer={'gpu' if gpu else 'cpu'}",
        "logger=csv",
        *([] if batches is None else [f"trainer.limit_batches={batches}"]),
        *extra,
    ]


def lightning_epoch(extra: list[str], batches: int | None, gpu: bool, root: Path, warm_up: bool = False) -> float:
    """Seconds of one epoch through ``optrepro.train.run``: (a three-epoch run - a one-epoch run) / 2. ``warm_up``
    first makes an untimed one-epoch run, so that both timed runs find the compiler's caches warm (otherwise the
    first compilation, slower than the second, can exceed two epochs and make the difference negative)."""
    common = resnet_overrides(batches, gpu, extra)
    seconds = []
    for i, epochs in enumerate(((1,) if warm_up else ()) + (1, 3)):
        run_dir = root / f"{'_'.join(extra) or 'default'}_{i}".replace("=", "-")
        start = time.perf_counter()
        run(compose([*common, f"trainer.epochs={epochs}", f"paths.run_dir={run_dir}"]))
        seconds.append(time.perf_counter() - start)
    epoch = (seconds[-1] - seconds[-2]) / 2
    if epoch <= 0:
        raise RuntimeError(
            f"the three-epoch run took {seconds[-1]:.1f} s, the one-epoch run {seconds[-2]:.1f} s: start-up varies "
            "more than two epochs cost; time more batches (--batches)"
        )
    return epoch


def plain_epoch(batches: int | None, device: torch.device, compile: bool = False) -> float:
    """Seconds of one epoch of a plain loop: data on the device, a fresh permutation, no host syncs per step.
    ``compile``: the model goes through ``torch.compile`` (default mode), compiled during the warm-up epoch."""
    torch.manual_seed(0)
    n = TRAIN if batches is None else batches * BATCH
    x = torch.randn(n, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (n,), device=device)
    model = ResNet20(3, 10).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, foreach=True)
    params = list(model.parameters())
    forward = torch.compile(model) if compile else model

    def epoch() -> None:
        model.train()
        order = torch.randperm(n, device=device)
        for i in range(0, n, BATCH):
            idx = order[i : i + BATCH]
            loss = F.cross_entropy(forward(x[idx]), y[idx])
            loss = loss + 0.5 * WEIGHT_DECAY * sum(p.pow(2).sum() for p in params)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    epoch()  # warm-up (cuDNN autotuning, allocator)
    sync()
    start = time.perf_counter()
    epoch()
    sync()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, help="batches per epoch (default: 20 on a CPU, a full epoch on a GPU)")
    ap.add_argument("--ways", nargs="+", default=["host", "on_device", "compiled", "plain", "plain_compiled"])
    args = ap.parse_args()
    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    batches = args.batches if args.batches else (None if gpu else 20)
    steps = STEPS if batches is None else min(batches, STEPS)
    scale = STEPS / steps  # extrapolation to a full epoch
    print(
        f"torch {torch.__version__}, {device.type}"
        + (f" ({torch.cuda.get_device_name()})" if gpu else f", {torch.get_num_threads()} threads")
        + f"; ResNet-20, batch {BATCH}, {steps} of {STEPS} steps per epoch"
        + ("" if scale == 1 else f" (seconds extrapolated x{scale:.1f})")
    )
    ways = {
        "host": lambda root: lightning_epoch(["task.on_device=false"], batches, gpu, root),
        "on_device": lambda root: lightning_epoch(["task.on_device=true"], batches, gpu, root),
        "compiled": lambda root: lightning_epoch(
            ["task.on_device=true", "trainer.compile=true"], batches, gpu, root, warm_up=True
        ),
        "plain": lambda root: plain_epoch(batches, device),
        "plain_compiled": lambda root: plain_epoch(batches, device, compile=True),
    }
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.ways:
            try:
                results[name] = ways[name](Path(tmp)) * scale
            except Exception as err:  # one way failing should not hide the others
                print(f"{name:11s} failed: {type(err).__name__}: {err}")
    print(f"{'way':14s} {'s/epoch':>8s} {'vs plain':>9s}")
    for name, seconds in results.items():
        reference = results.get("plain_compiled" if "compiled" in name else "plain")
        ratio = f"{seconds / reference:9.2f}" if reference else f"{'':9s}"
        print(f"{name:14s} {seconds:8.2f} {ratio}")
    print("(compiled ways are compared with plain_compiled, the others with plain)")


if __name__ == "__main__":
    main()
