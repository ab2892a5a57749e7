"""Seconds per epoch of the HT sine MLP (1-100x6-1, Adam, batch 64, 8000 training samples) for one member and
for an N-member vmapped ensemble, measured side by side in one process, on the CPU and on a GPU if present.

The goal (issue 2): a 100-member ensemble epoch costs at most 3x a single-member epoch on a GPU.
Usage: python scripts/bench_ensemble.py [--members 100] [--epochs 2]
"""

import argparse
import time

import torch

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cpu-batches", type=int, default=20, help="batches per epoch on the CPU (full: 125)")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
