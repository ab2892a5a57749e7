"""Wall time of a whole HT sine sweep done by the framework against a hand-written one-process loop doing the same
work, measured side by side in one run, each as a fresh process timed from outside (start-up and imports included).

Goal (issue 15): a sweep through the framework takes at most ``--goal`` (1.3x) the hand-written loop's time.

Two sweeps, five seeds per job as one 5-member ensemble (profile=quick's cap) and 2000 samples:

- ``3x5``: random init, warm start and the homotopy at omega 137, with a small budget: 2 source epochs, then 6 target
  epochs, the homotopy's staircase gamma 3, k 2 (lambda 1/3, 1/3, 2/3, 2/3, 1, 1);
- ``f2a``: HT Figure 2a (``sweep=ht/f2a``: 3 methods x 7 omegas). At profile=quick that is 10 source + 250 target
  epochs per job, about 40 minutes per framework pass on one CPU core, so by default its epochs are cut to a tenth
  (``--target-epochs 25``: 1 source epoch, gamma 10, k 2, the same staircase shape); ``--target-epochs 250`` runs
  the literal ``sweep=ht/f2a profile=quick``.

Each sweep is measured as:

1. ``per-job``: ``python -m optrepro.cli -m ...`` (``optrepro-train -m``) as a user runs it, Hydra's basic launcher
   doing one job after another in one process;
2. ``hand-written``: this script's ``--hand-written`` mode in a fresh process: ``sine_baseline.HandWrittenSweep``,
   every member of every job (methods x omegas x seeds) in one stacked model, the source pre-training once per seed
   and shared by warm start and the homotopy, each member at its own lambda, both splits evaluated at each epoch's
   end, every member's rows written to one CSV at the end;
3. ``packed``: the same ``optrepro-train -m`` command with ``hydra/launcher=packed``, when that launcher's config
   exists (``configs/hydra/launcher/packed.yaml``); otherwise the output says it is not available.

The budgets the hand-written loop trains come from the config each framework job runs (composed and profiled here,
then checked against every job's ``summary.json``): after each framework pass every member's summary must say
``completed`` with those values, or the script fails. Each pass writes into a fresh temporary sweep folder.
Every process gets ``OMP_NUM_THREADS=--threads`` (1: on a shared machine). The table's last column is the per-job
sweep's time outside its jobs' own ``wall_time_s`` (start-up, Hydra, torch and Lightning imports, between jobs), per
job. What differs besides the launcher, on purpose: the framework keeps the preset's checkpoints
(``trainer.checkpoint=true``) and its Adam as configured (``torch.optim.Adam``); each of its warm-start and homotopy
jobs pre-trains the source itself (Figure 2a: 14 times per seed), where the hand-written loop does it once per seed,
writes no checkpoint and steps ``sine_baseline.MemberAdam`` (Adam in foreach operations, one step count per member).

Usage: python scripts/bench_sweep.py [--sweeps 3x5 f2a] [--target-epochs 25] [--repeats 1] [--out PATH]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

#: the homotopy methods of HT section 5, as the framework and sine_baseline.HandWrittenSweep name them
METHODS = ["random_init", "warm_start", "data_homotopy"]
FROM_SOURCE = ("warm_start", "data_homotopy")
#: HT Figure 2a at profile=quick: target epochs (2500 x 0.1); --target-epochs below that cuts the sweep
F2A_QUICK_EPOCHS = 250
PACKED = "hydra/launcher/packed.yaml"


@dataclass
class Sweep:
    """One sweep: the ``optrepro-train -m`` overrides, and what its jobs train (read from the composed config)."""

    name: str
    title: str
    overrides: list[str]  # the whole -m command line but hydra.sweep.dir
    point: list[str]  # the overrides of one point without the swept keys (for compose)
    methods: list[str]
    omegas: list[float]
    note: str = ""
    budget: dict = field(default_factory=dict)  # filled by read_budget

    @property
    def jobs(self) -> int:
        return len(self.methods) * len(self.omegas)

    @property
    def members(self) -> int:
        return self.jobs * self.budget["seeds"]


def sweep_3x5() -> Sweep:
    # profile=quick scales command-line counts too (trainer.epochs=6 would train floor(0.6) -> 1 epoch), so this
    # budget is given at profile=paper with quick's caps: 5 seeds as one ensemble, 2000 samples
    fixed = ["experiment=ht/sine_f1", "profile=paper", "ensemble.size=5", "task.n_samples=2000"]
    fixed += ["trainer.epochs=6", "homotopy.source_epochs=2", "homotopy.gamma=3", "homotopy.k=2"]
    return Sweep(
        name="3x5",
        title="3 methods x 5 seeds, omega 137",
        overrides=[*fixed, f"method={','.join(METHODS)}"],
        point=fixed,
        methods=list(METHODS),
        omegas=[137.0],
    )


def sweep_f2a(target_epochs: int) -> Sweep:
    from omegaconf import OmegaConf

    from optrepro.config import config_dir

    params = OmegaConf.load(config_dir() / "sweep/ht/f2a.yaml").hydra.sweeper.params
    methods = str(params["method"]).split(",")
    omegas = [float(o) for o in str(params["task.omega"]).split(",")]
    if target_epochs == F2A_QUICK_EPOCHS:
        fixed, note = ["experiment=ht/sine_f1", "profile=quick"], "HT Figure 2a at profile=quick, whole"
    else:
        # quick's budget (250 target epochs, 10 source epochs, gamma 10, k 20) scaled to target_epochs; given at
        # profile=paper with quick's caps, since quick would scale these numbers again
        scale = target_epochs / F2A_QUICK_EPOCHS
        source, k = max(1, round(10 * scale)), max(1, round(20 * scale))
        fixed = ["experiment=ht/sine_f1", "profile=paper", "ensemble.size=5", "task.n_samples=2000"]
        fixed += [f"trainer.epochs={target_epochs}", f"homotopy.source_epochs={source}", f"homotopy.k={k}"]
        note = (
            f"CUT: {target_epochs} target epochs instead of profile=quick's {F2A_QUICK_EPOCHS} "
            f"(--target-epochs {F2A_QUICK_EPOCHS} runs the whole sweep)"
        )
    return Sweep(
        name="f2a",
        title=f"HT Figure 2a, {len(methods)} methods x {len(omegas)} omegas x 5 seeds",
        overrides=[*fixed, "sweep=ht/f2a"],
        point=fixed,
        methods=methods,
        omegas=omegas,
        note=note,
    )


def read_budget(sweep: Sweep) -> dict:
    """What each job trains, from the config it runs (composed as optrepro-train does, then the profile)."""
    from optrepro.config import apply_profile, compose

    cfg = apply_profile(compose([*sweep.point, "method=data_homotopy", f"task.omega={sweep.omegas[0]}"]))
    t = cfg.task
    return {
        "seed": int(cfg.seed),
        "seeds": int(cfg.ensemble.size),
        "source_epochs": int(cfg.homotopy.source_epochs),
        "target_epochs": int(cfg.trainer.epochs),
        "gamma": int(cfg.homotopy.gamma),
        "k": int(cfg.homotopy.k),
        "n_samples": int(t.n_samples),
        "train_fraction": float(t.train_fraction),
        "noise_std": float(t.noise_std),
        "source_omega": float(t.source_omega),
        "batch_size": int(t.batch_size),
        "hidden": int(cfg.model.hidden),
        "depth": int(cfg.model.depth),
        "lr": float(cfg.optimizer.lr),
    }


def environment(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def timed(argv: list[str], log: Path, threads: int) -> float:
    """Seconds of ``argv`` as a fresh process (its output into ``log``); fails loudly on a non-zero exit."""
    with open(log, "w") as out:
        start = time.perf_counter()
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=environment(threads))
        elapsed = time.perf_counter() - start
    if done.returncode != 0:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"FAILED ({done.returncode}): {' '.join(argv)}\n--- last lines of {log} ---\n{tail}")
    return elapsed


def train_command(sweep: Sweep, sweep_dir: Path, launcher: str | None = None) -> list[str]:
    extra = [f"hydra/launcher={launcher}"] if launcher else []
    return [sys.executable, "-m", "optrepro.cli", "-m", *sweep.overrides, *extra, f"hydra.sweep.dir={sweep_dir}"]


def check_framework(sweep: Sweep, sweep_dir: Path) -> float:
    """Every member of every job has a completed summary with the sweep's budget; returns the seconds the jobs'
    summaries count as their own (``wall_time_s`` of each job, each ensemble counted once)."""
    b = sweep.budget
    seeds = range(b["seed"], b["seed"] + b["seeds"])
    expected = {(m, o, s) for m in sweep.methods for o in sweep.omegas for s in seeds}
    problems, found, job_seconds = [], set(), {}
    for path in sorted(sweep_dir.rglob("summary.json")):
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            problems.append(f"{path}: unreadable ({err})")
            continue
        if d.get("status") != "completed":
            problems.append(f"{path}: status {d.get('status')!r}")
        if d.get("kind") != "run":
            continue
        c = d["config"]
        key = (d["method"], float(c["task"]["omega"]), int(d["seed"]))
        found.add(key)
        job_seconds[(key[0], key[1], path.parent.parent)] = float(d.get("wall_time_s", 0.0))
        want = {
            "trainer.epochs": b["target_epochs"],
            "method.source_epochs": b["source_epochs"] if key[0] in FROM_SOURCE else 0,
            "ensemble.size": b["seeds"],
            "task.n_samples": b["n_samples"],
            "final.epoch": b["target_epochs"] - 1,
        }
        if key[0] == "data_homotopy":
            want.update({"method.schedule.gamma": b["gamma"], "method.schedule.k": b["k"]})
        for name, value in want.items():
            node = d["final"] if name.startswith("final.") else c
            for part in name.removeprefix("final.").split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node != value:
                problems.append(f"{path}: {name} = {node!r}, expected {value!r}")
    if expected - found:
        problems.append(f"no summary for {len(expected - found)} members, e.g. {sorted(expected - found)[:3]}")
    if found - expected:
        problems.append(f"unexpected members {sorted(found - expected)[:3]}")
    if problems:
        raise SystemExit(f"FAILED: the sweep in {sweep_dir} is not complete:\n  " + "\n  ".join(problems[:20]))
    return sum(job_seconds.values())


def expected_rows(sweep: Sweep) -> int:
    b = sweep.budget
    sourced = sum(m in FROM_SOURCE for m in sweep.methods) * len(sweep.omegas) * b["seeds"]
    return sweep.members * b["target_epochs"] + sourced * b["source_epochs"]


def measure(sweep: Sweep, variant: str, root: Path, threads: int) -> dict:
    """One pass of ``variant`` in a fresh folder under ``root``: seconds, and what was checked."""
    where = Path(tempfile.mkdtemp(prefix=f"{sweep.name}-{variant}-", dir=root))
    if variant == "hand-written":
        spec = {"methods": sweep.methods, "omegas": sweep.omegas, **sweep.budget}  # seed: its generator's
        (where / "spec.json").write_text(json.dumps(spec))
        argv = [sys.executable, str(Path(__file__).resolve()), "--hand-written", str(where / "spec.json")]
        seconds = timed(argv, where / "run.log", threads)
        with open(where / "rows.csv") as f:
            rows = sum(1 for _ in csv.reader(f)) - 1
        if rows != expected_rows(sweep):
            raise SystemExit(f"FAILED: {where / 'rows.csv'} has {rows} rows, expected {expected_rows(sweep)}")
        return {"seconds": seconds, "rows": rows, "command": argv}
    argv = train_command(sweep, where / "sweep", "packed" if variant == "packed" else None)
    seconds = timed(argv, where / "train.log", threads)
    in_jobs = check_framework(sweep, where / "sweep")
    return {
        "seconds": seconds,
        "jobs_wall_time_s": in_jobs,
        "outside_jobs_s_per_job": (seconds - in_jobs) / sweep.jobs,
        "command": argv,
    }


def hand_written(spec_path: str) -> None:
    """``--hand-written SPEC``: the whole sweep by sine_baseline.HandWrittenSweep, rows to rows.csv beside SPEC."""
    from sine_baseline import HandWrittenSweep

    spec = json.loads(Path(spec_path).read_text())
    sweep = HandWrittenSweep(**spec)
    rows = sweep.run()
    sweep.write_csv(Path(spec_path).with_name("rows.csv"))
    print(f"{rows} rows, {len(sweep.members)} members")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", nargs="+", default=["3x5", "f2a"], choices=["3x5", "f2a"])
    parser.add_argument(
        "--target-epochs",
        type=int,
        default=25,
        help=f"f2a's target epochs (profile=quick: {F2A_QUICK_EPOCHS}, about 40 min per pass on one core)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="passes of each variant, taking turns; the median")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every process")
    parser.add_argument("--goal", type=float, default=1.3, help="framework / hand-written at most this")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/bench_sweep.json"))
    parser.add_argument("--keep", action="store_true", help="keep the sweep folders (printed) instead of deleting")
    parser.add_argument("--hand-written", metavar="SPEC", help=argparse.SUPPRESS)  # the timed worker process
    args = parser.parse_args()
    if args.hand_written:
        return hand_written(args.hand_written)

    sys.stdout.reconfigure(line_buffering=True)  # progress shows as it comes, also into a file
    from optrepro.config import config_dir

    packed = (config_dir() / PACKED).is_file()
    variants = ["per-job", "hand-written"] + (["packed"] if packed else [])
    sweeps = [sweep_3x5() if name == "3x5" else sweep_f2a(args.target_epochs) for name in args.sweeps]
    root = Path(tempfile.mkdtemp(prefix="bench_sweep-"))
    print(f"HT sine sweeps: the framework against a hand-written one-process loop; OMP_NUM_THREADS={args.threads}")
    print(f"python {sys.version.split()[0]}; work folders under {root}")
    results = {}
    try:
        for sweep in sweeps:
            sweep.budget = read_budget(sweep)
            b = sweep.budget
            print(
                f"\nsweep {sweep.name}: {sweep.title}: {sweep.jobs} jobs, {sweep.members} members; "
                f"{b['source_epochs']} source + {b['target_epochs']} target epochs, gamma {b['gamma']}, k {b['k']}, "
                f"{b['n_samples']} samples"
            )
            if sweep.note:
                print(f"  {sweep.note}")
            print(f"  per-job:      {shlex.join(train_command(sweep, Path('TMP')))}")
            print("  hand-written: python scripts/bench_sweep.py --hand-written SPEC (sine_baseline.HandWrittenSweep)")
            if packed:
                print(f"  packed:       {shlex.join(train_command(sweep, Path('TMP'), 'packed'))}")
            runs: dict[str, list[dict]] = {v: [] for v in variants}
            for r in range(args.repeats):
                for variant in variants:
                    runs[variant].append(measure(sweep, variant, root, args.threads))
                    print(f"  pass {r + 1}: {variant:12s} {runs[variant][-1]['seconds']:8.1f} s", flush=True)
            results[sweep.name] = {
                "title": sweep.title,
                "note": sweep.note,
                "jobs": sweep.jobs,
                "members": sweep.members,
                "budget": b,
                "overrides": sweep.overrides,
                "seconds": {v: statistics.median(x["seconds"] for x in runs[v]) for v in variants},
                "runs": runs,
            }
    finally:
        if args.keep:
            print(f"sweep folders kept under {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    print(f"\nseconds per whole sweep (median of {args.repeats}; each a fresh process)")
    header = f"{'sweep':6s} {'jobs':>5s} {'members':>8s} {'per-job s':>10s} {'hand-written s':>15s} {'packed s':>9s}"
    print(header + f" {'per-job: s/job outside jobs':>28s}")
    for name, r in results.items():
        s = r["seconds"]
        packed_s = f"{s['packed']:9.1f}" if "packed" in s else f"{'n/a':>9s}"
        outside = statistics.median(x["outside_jobs_s_per_job"] for x in r["runs"]["per-job"])
        print(
            f"{name:6s} {r['jobs']:5d} {r['members']:8d} {s['per-job']:10.1f} {s['hand-written']:15.1f} {packed_s} "
            f"{outside:28.1f}"
        )
    ratios = {}
    print(f"\nratios (goal <= {args.goal:g}x):")
    for name, r in results.items():
        s = r["seconds"]
        cut = " (epochs cut)" if r["note"].startswith("CUT") else ""
        ratios[name] = {"per-job/hand-written": s["per-job"] / s["hand-written"]}
        if packed:
            ratios[name]["packed/hand-written"] = s["packed"] / s["hand-written"]
            ratios[name]["packed/per-job"] = s["packed"] / s["per-job"]
        for what, value in ratios[name].items():
            goal = (
                ""
                if what == "packed/per-job"
                else f" (goal <= {args.goal:g}x: {'met' if value <= args.goal else 'NOT met'})"
            )
            label = what.replace("per-job", "framework") if what == "per-job/hand-written" else what
            print(f"sweep {name}{cut}: {label} = {value:.2f}x{goal}")
        if not packed:
            print(f"sweep {name}{cut}: packed: not available (no {PACKED} under {config_dir()})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"threads": args.threads, "goal": args.goal, "packed_available": packed, "sweeps": results}
    args.out.write_text(json.dumps({**record, "ratios": ratios}, indent=2, default=str))
    print(f"numbers: {args.out}")


if __name__ == "__main__":
    main()
