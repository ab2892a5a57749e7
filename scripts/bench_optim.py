"""One optimizer step on a ResNet-20-sized list of parameters (0.27M in 59 tensors): INNA and Step-Tuned SGD
against torch.optim.SGD with momentum (foreach), measured side by side in one run, on the CPU and on a GPU if
present.

Gradients are fixed tensors, so only the optimizers' own work is timed; Step-Tuned SGD's closure does nothing
(its two gradient evaluations are not counted), which leaves its extra work. The three optimizers take turns
in rounds of a few steps and each time is the median over rounds, so a load that comes and goes on the
machine touches all three alike.

Goals (issue 3): INNA <= 1.3x SGD with momentum; Step-Tuned SGD's extra work <= 1.5x one SGD step. Each is
timed without weight decay and with lambda = 1e-4 as a loss term (TH chapter 4), for all three alike.
Usage: python scripts/bench_optim.py [--rounds 40] [--steps 10] [--threads N]

On a CPU shared with other busy processes, multi-threaded kernels wait on each other (a 270K-element operation
then takes milliseconds instead of tens of microseconds); measure on a quiet machine or with --threads 1.
"""

import argparse
import statistics
import time

import torch

from optrepro.optim import INNA, StepTunedSGD

GOALS = {"INNA": 1.3, "Step-Tuned SGD": 1.5}


def resnet20_shapes() -> list[tuple[int, ...]]:
    shapes = [(16, 3, 3, 3), (16,), (16,)]
    c_in = 16
    for c in (16, 32, 64):
        for block in range(3):
            shapes += [(c, c_in if block == 0 else c, 3, 3), (c,), (c,), (c, c, 3, 3), (c,), (c,)]
        c_in = c
    return shapes + [(10, 64), (10,)]


def stepper(make, device: torch.device):
    """A function doing one step of a fresh optimizer on ResNet-20-shaped parameters with fixed gradients."""
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, device=device) * 0.1) for s in resnet20_shapes()]
    for p in params:
        p.grad = torch.randn_like(p) * 0.01
    opt = make(params)
    zero = torch.zeros((), device=device)
    return lambda: opt.step(lambda: zero)


def optimizer_steppers(wd: float, device: torch.device) -> dict:
    """The three optimizers compared, each as a ``stepper`` on ResNet-20's tensors: SGD with momentum (the
    reference), INNA and Step-Tuned SGD, at learning rate 0.1 and weight decay ``wd``."""
    return {
        "SGD": stepper(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=wd, foreach=True), device),
        "INNA": stepper(lambda p: INNA(p, lr=0.1, weight_decay=wd, foreach=True), device),
        "Step-Tuned SGD": stepper(lambda p: StepTunedSGD(p, lr=0.1, weight_decay=wd), device),
    }


def median_seconds(steppers: dict, device: torch.device, rounds: int, steps: int) -> dict[str, float]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = {name: [] for name in steppers}
    for step in steppers.values():  # warm-up: state allocation, kernel caches
        for _ in range(steps):
            step()
    for _ in range(rounds):
        for name, step in steppers.items():
            sync()
            start = time.perf_counter()
            for _ in range(steps):
                step()
            sync()
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, help="CPU threads (default: PyTorch's); 1 on a busy machine")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    n = sum(torch.Size(s).numel() for s in resnet20_shapes())
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; {n} parameters in "
        f"{len(resnet20_shapes())} tensors; median of {args.rounds} rounds of {args.steps} steps"
    )
    print(f"{'device':13s} {'SGD+momentum us':>16s} {'INNA us':>8s} {'ratio':>6s} {'Step-Tuned us':>14s} {'ratio':>6s}")
    for device in devices:
        for wd in (0.0, 1e-4):  # TH chapter 4 trains with lambda = 1e-4 (a loss term for all three)
            t = median_seconds(optimizer_steppers(wd, device), device, args.rounds, args.steps)
            ratios = {name: t[name] / t["SGD"] for name in GOALS}
            print(
                f"{device.type + (f', wd {wd:g}' if wd else ''):13s} {t['SGD'] * 1e6:16.0f} {t['INNA'] * 1e6:8.0f} "
                f"{ratios['INNA']:6.2f} {t['Step-Tuned SGD'] * 1e6:14.0f} {ratios['Step-Tuned SGD']:6.2f}"
            )
            for name, goal in GOALS.items():
                verdict = "met" if ratios[name] <= goal else "NOT met"
                print(f"              {name}: {ratios[name]:.2f}x SGD with momentum, goal <= {goal}x: {verdict}")


if __name__ == "__main__":
    main()
