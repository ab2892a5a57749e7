"""Seconds per epoch of the HT sine MLP (1-100x6-1, Adam, batch 64, 8000 training samples) for one member and
for an N-member vmapped ensemble, measured side by side in one process, on the CPU and on a GPU if present.

The goal (issue 2): a 100-member ensemble epoch costs at most 3x a single-member epoch on a GPU.

Then the framework against the hand-written loop (issue 15; goal <= 1.2x): the seconds of an epoch of
``optrepro.train.run`` on the sine preset (``method=random_init``, timed inside Lightning by
``bench_common.EpochTimer``) beside those of ``scripts/sine_baseline.py`` (stacked weights, batched matmuls, one
fused Adam, data on the device), at 1, 100 and 300 members: the training steps alone, and the whole epoch (with the
evaluation of both splits that both make at each epoch's end). The first epoch of each is a warm-up, left out.
On the CPU each epoch is cut to ``--cpu-batches`` batches and the task to ``--cpu-samples`` samples (the evaluation
of the whole train split would otherwise dominate); on a GPU both run whole epochs of the paper's 10,000 samples.
Usage: python scripts/bench_ensemble.py [--members 100] [--epochs 2] [--versus 1 100 300] [--threads 1]
"""

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch
from bench_common import framework_run, hand_written_epochs, sine_overrides, steady
from sine_baseline import HandWrittenSine

from optrepro.data.sine import MemberBatches, SineDataModule
from optrepro.ensemble import build_members
from optrepro.models import MLP


def seconds_per_epoch(members: int, device: torch.device, epochs: int, limit: int | None) -> float:
    seeds = list(range(members))
    dm = SineDataModule(seeds=seeds, omega=137.0)
    dm.setup()
    dm.to(device)
    model = build_members(lambda: MLP(1, 1, 100, 6), seeds).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)

    def epoch(e: int) -> None:
        for x, _, y in MemberBatches(dm.train, seeds, 64, e, limit):
            loss = (model(x) - y).pow(2).flatten(1).mean(1).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    epoch(0)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for e in range(1, epochs + 1):
        epoch(e)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / epochs


def versus_hand_written(
    members: list[int], device: torch.device, epochs: int, limit: int | None, n_samples: int | None, root: Path
) -> dict[int, dict[str, float]]:
    """Seconds per epoch of the framework and of the hand-written loop, side by side, for each member count."""
    out = {}
    for n in members:
        ran = framework_run(sine_overrides(n, 1 + epochs, device.type == "cuda", limit, n_samples), root / str(n))
        hand = hand_written_epochs(HandWrittenSine(n, device, n_samples=n_samples or 10_000), epochs, limit)
        out[n] = {
            "framework_train_s": steady(ran["epochs"], "train_s"),
            "framework_epoch_s": steady(ran["epochs"], "epoch_s"),
            "hand_train_s": hand["train_s"],
            "hand_epoch_s": hand["epoch_s"],
        }
    return out


def print_versus(device: torch.device, batches: int, results: dict[int, dict[str, float]]) -> None:
    print(
        f"framework (optrepro.train.run) against the hand-written loop (scripts/sine_baseline.py), {device.type}, "
        f"{batches} batches per epoch"
    )
    print(
        f"{'members':>7s} {'framework steps s':>18s} {'hand steps s':>13s} {'framework epoch s':>18s} "
        f"{'hand epoch s':>13s}"
    )
    for n, r in results.items():
        print(
            f"{n:7d} {r['framework_train_s']:18.3f} {r['hand_train_s']:13.3f} {r['framework_epoch_s']:18.3f} "
            f"{r['hand_epoch_s']:13.3f}"
        )
    print("ratios, framework / hand-written (goal <= 1.2x):")
    for n, r in results.items():
        steps, whole = r["framework_train_s"] / r["hand_train_s"], r["framework_epoch_s"] / r["hand_epoch_s"]
        verdict = "met" if whole <= 1.2 else "NOT met"
        print(f"  {n:4d} member(s): steps {steps:.2f}x, whole epoch {whole:.2f}x ({verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cpu-batches", type=int, default=20, help="batches per epoch on the CPU (full: 125)")
    parser.add_argument("--cpu-samples", type=int, default=2000, help="task.n_samples on the CPU (paper: 10000)")
    parser.add_argument("--versus", type=int, nargs="*", default=[1, 100, 300], help="members, framework vs hand")
    parser.add_argument("--threads", type=int, help="CPU threads (default: PyTorch's); 1 on a busy machine")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}; sine MLP 1-100x6-1, Adam, batch 64")
    print(
        f"{'device':8s} {'batches':>7s} {'1 member s/epoch':>17s} {f'{args.members} members s/epoch':>19s} "
        f"{'ratio':>6s} {'per-member speed-up':>20s}"
    )
    for device in devices:
        limit = args.cpu_batches if device.type == "cpu" else None
        one = seconds_per_epoch(1, device, args.epochs, limit)
        many = seconds_per_epoch(args.members, device, args.epochs, limit)
        batches = limit or 125
        print(
            f"{device.type:8s} {batches:7d} {one:17.3f} {many:19.3f} {many / one:6.2f} "
            f"{args.members * one / many:19.1f}x"
        )
    for device in devices if args.versus else []:
        cpu = device.type == "cpu"
        limit, samples = (args.cpu_batches, args.cpu_samples) if cpu else (None, None)
        batches = min(limit or 125, math.ceil((samples or 10_000) * 0.8 / 64))
        with tempfile.TemporaryDirectory() as tmp:
            results = versus_hand_written(args.versus, device, args.epochs, limit, samples, Path(tmp))
        print_versus(device, batches, results)


if __name__ == "__main__":
    main()
