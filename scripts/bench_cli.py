"""How fast optrepro-train answers without training: --help, --cfg job and a shell-completion query, each timed as
a fresh process beside ``python -c "import torch, lightning"`` (what any command that trains pays first).

Each time is the median over --runs runs of a subprocess, the commands taking turns, so a load that comes and goes
on the machine touches them alike. Goal (issue: fast command line): each under 2 s, far below the torch import.
Usage: python scripts/bench_cli.py [--runs 5] [--goal 2.0]

optrepro-train is the console script beside this interpreter (``$(BIN)/optrepro-train``), else
``python -m optrepro.cli``; set PYTHONPATH to time another checkout's code.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def train_command() -> list[str]:
    script = Path(sys.executable).parent / "optrepro-train"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "optrepro.cli"]


def commands() -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (argv, extra environment)."""
    train = train_command()
    return {
        "--help": ([*train, "--help"], {}),
        "--cfg job": ([*train, "experiment=ht/sine_f1", "--cfg", "job"], {}),
        "completion experiment=ht/s": ([*train, "-sc", "query=bash"], {"COMP_LINE": "optrepro-train experiment=ht/s"}),
        "completion (all keys)": ([*train, "-sc", "query=bash"], {"COMP_LINE": "optrepro-train "}),
        "import torch, lightning": ([sys.executable, "-c", "import torch, lightning"], {}),
    }


def seconds(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--goal", type=float, default=2.0, help="seconds each optrepro-train command may take")
    args = parser.parse_args()
    todo = commands()
    times: dict[str, list[float]] = {name: [] for name in todo}
    for argv, env in todo.values():  # warm-up: the file system cache and .pyc files
        seconds(argv, env)
    for _ in range(args.runs):
        for name, (argv, env) in todo.items():
            times[name].append(seconds(argv, env))
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"{' '.join(train_command())}; median of {args.runs} runs, each a fresh process")
    for name, t in median.items():
        print(f"  {name:28s} {t:6.2f} s")
    base = median.pop("import torch, lightning")
    print("ratios to `python -c 'import torch, lightning'`:")
    for name, t in median.items():
        verdict = "met" if t < args.goal else "NOT met"
        print(f"  {name:28s} {t / base:5.2f}x ({t:.2f} s, goal < {args.goal:g} s: {verdict})")


if __name__ == "__main__":
    main()
