"""Operations dispatched per training step of the HT sine MLP (1-100x6-1, Adam, batch 64): the framework's step
(``optrepro.train.run``, counted inside Lightning by ``bench_common.DispatchCounter``) against the hand-written
loop (``scripts/sine_baseline.py``: stacked weights, batched matmuls, one fused Adam), at 1 and 100 members.

Every ATen operation is counted with a ``TorchDispatchMode`` over whole steps (fetching the batch, forward, backward,
optimizer, the loop's bookkeeping), the first step left out. A launch-bound GPU step costs about one kernel launch
per operation that is not a view, so the count is a deterministic stand-in for launches that a CPU can measure
(issue 15's goal: framework <= 1.5x the hand-written loop). The framework runs as configured (``optimizer=adam``:
``torch.optim.Adam``, foreach on a CPU too since ``train.prefer_foreach``, whose CPU bits equal the per-tensor
loop's), with ``+optimizer.foreach=true`` (the same, said explicitly) and with ``+optimizer.fused=true`` (what the
hand-written loop runs; it rounds differently, so it is not the default), to show the optimizer's share.
Scalar reads (``aten._local_scalar_dense``: ``.item()``, ``float(t)``) are a host sync each when the tensor is on
a GPU; Adam's foreach implementation reads its step counters this way, twice per parameter (on the host, no sync).

Usage: python scripts/bench_dispatch.py [--members 1 100] [--steps 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections import Counter
from pathlib import Path

import torch
from bench_common import count_hand_written, framework_run, sine_overrides
from sine_baseline import HandWrittenSine

VARIANTS = {"as configured": [], "foreach Adam": ["+optimizer.foreach=true"], "fused Adam": ["+optimizer.fused=true"]}
GOAL = 1.5


def per_step(windows: list[dict]) -> dict:
    """The median window's counts (they are the same for every steady step)."""
    keys = ("ops", "non_view_ops", "host_syncs")
    out = {k: statistics.median(w[k] for w in windows) for k in keys}
    names = Counter()
    for w in windows:
        names.update(w["by_name"])
    out["by_name"] = {k: v / len(windows) for k, v in names.items()}
    return out


def measure(members: list[int], steps: int, device: torch.device, root: Path, variants=VARIANTS) -> dict:
    """``{members: {"hand-written": counts, "framework, <variant>": counts, ...}}``."""
    gpu = device.type == "cuda"
    results: dict = {}
    for n in members:
        row = {"hand-written": per_step(count_hand_written(HandWrittenSine(n, device, n_samples=1000), steps))}
        for name, extra in variants.items():
            overrides = [*sine_overrides(n, 1, gpu, limit=steps + 3, n_samples=1000), *extra]
            counted = framework_run(overrides, root / f"{n}_{name.replace(' ', '_')}", timer=False, count_steps=steps)
            row[f"framework, {name}"] = per_step(counted["windows"])
        results[n] = row
    return results


def top_differences(framework: dict, hand: dict, k: int = 10) -> list[tuple[str, float]]:
    diff = Counter(framework["by_name"])
    diff.subtract(hand["by_name"])
    return [(name, n) for name, n in diff.most_common(k) if n > 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--steps", type=int, default=3, help="steps counted (after the first)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: the counts hardly depend on it")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        results = measure(args.members, args.steps, device, Path(tmp))
    print(f"torch {torch.__version__}, {device.type}; sine MLP 1-100x6-1, Adam, batch 64; per training step")
    print(f"{'members':>7s}  {'loop':28s} {'ops':>6s} {'not views':>10s} {'scalar reads':>13s} {'vs hand':>8s}")
    for n, row in results.items():
        hand = row["hand-written"]["non_view_ops"]
        for name, c in row.items():
            ratio = c["non_view_ops"] / hand
            print(f"{n:7d}  {name:28s} {c['ops']:6.0f} {c['non_view_ops']:10.0f} {c['host_syncs']:13.0f} {ratio:7.2f}x")
    for n, row in results.items():
        top = top_differences(row["framework, as configured"], row["hand-written"])
        print(f"{n} member(s), the framework's extra operations per step: " + ", ".join(f"{k} +{v:g}" for k, v in top))
    print(f"ratios, operations that are not views, framework / hand-written (goal <= {GOAL}x):")
    for n, row in results.items():
        hand = row["hand-written"]["non_view_ops"]
        parts = [f"{name.split(', ')[1]} {c['non_view_ops'] / hand:.2f}x" for name, c in row.items() if ", " in name]
        verdict = "met" if row["framework, as configured"]["non_view_ops"] / hand <= GOAL else "NOT met"
        print(f"  {n:4d} member(s): {'; '.join(parts)} (as configured: {verdict})")


if __name__ == "__main__":
    main()
