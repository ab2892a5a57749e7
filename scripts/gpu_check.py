"""``make gpu-check``: the GPU paths checked and issue 15's speed goals measured on one GPU (H100 or H200), in one
command that ends within ``--budget`` seconds (default 450: under 8 minutes), writing one JSON and one markdown
summary (``outputs/gpu-check/gpu-check.{json,md}``, ``--out`` to change; ``gpu-check.log`` holds the tail of every
section's output).

The sections, in order. Each runs in a process of its own (forked, so nothing is imported twice) with a time
limit: a section that fails, hangs or breaks the CUDA context is recorded (its error and the tail of its output)
and the next one goes on.

1. ``machine``: the GPU, the CPU cores, the versions.
2. ``cuda_tests``: the tests marked ``cuda`` (``pytest -m cuda``): counts, and each failure's message.
3. ``ensemble``: seconds per epoch of the HT sine ensemble (1-100x6-1, Adam, batch 64, 125 steps an epoch) through
   the framework (``optrepro.train.run``, ``method=random_init``, timed inside Lightning by
   ``bench_common.EpochTimer``) at 1, 100, 300 and 2400 members: the training steps, and the whole epoch (with the
   evaluation of both splits); then 100 members with ``trainer.compile=true`` (the ensemble's forward compiled),
   whose steps against eager say whether compiling pays.
4. ``versus_hand``: the hand-written loop (``scripts/sine_baseline.py``: stacked weights, batched matmuls, one fused
   Adam; the baseline, not the framework) at the same sizes, and the framework / hand-written ratios.
5. ``resnet``: an epoch of ResNet-20 at batch 128 (TH problem (a)) on GENERATED CIFAR-shaped data (random images and
   labels: the timing of CIFAR-10 without the dataset), held on the device: a plain PyTorch loop, eager and
   ``torch.compile``d, against the framework (Lightning, ``task.on_device=true``), eager and
   ``trainer.compile=true``.
6. ``optimizers``: one step of INNA and Step-Tuned SGD against SGD with momentum on ResNet-20's parameter shapes
   (``scripts/bench_optim.py``), without and with weight decay.
7. ``ht_f1b``: HT Figure 1b at paper scale (``experiment=ht/sine_f1``: omega 137, 100 seeds, 2500 target epochs, the
   three methods) packed into one process: ``optrepro-train -m experiment=ht/sine_f1
   method=random_init,warm_start,data_homotopy hydra/launcher=packed trainer=gpu`` (300 members, the source
   pre-training of warm start and the homotopy shared), with the time that is left. At the deadline it gets
   SIGTERM, finishes its epoch and checkpoints (the same command resumes it); the summary gives the epochs reached,
   each method's median train loss there, the wall time and the projected time of the whole figure. Optional
   (``--skip ht_f1b``), always last.

Without CUDA, or with ``--cpu-size``, every section runs at tiny sizes on the CPU (the compiled ResNet ways are left
out there: inductor's C++ build takes minutes on a small CPU), so CI keeps the check working
(tests/test_gpu_check.py, slow tier). Times are medians over the epochs after the first (warm-up: allocation,
autotuning, compilation).

Usage: python scripts/gpu_check.py [--out DIR] [--budget SECONDS] [--cpu-size] [--only a,b] [--skip a,b]
       [--ht OVERRIDE ...] [--work DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The sections run in processes forked from this one, so this one must never initialize CUDA (a forked child of a
# process that did cannot use it): any availability check here asks NVML instead of the CUDA runtime.
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
TESTS = ROOT / "tests"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

HT_METHODS = ("random_init", "warm_start", "data_homotopy")
#: the sizes of each run: paper and GPU scale, and the CPU's tiny ones
SIZES: dict[str, dict[str, Any]] = {
    "gpu": {
        "members": [1, 100, 300, 2400],
        "sine_epochs": 2,  # timed epochs, after one warm-up epoch
        "sine_limit": None,  # whole epochs: 125 batches of 64
        "sine_samples": None,  # the paper's 10,000
        "resnet_batches": None,  # whole epochs: 391 batches of 128
        "resnet_compile": True,
        "compile_members": [100],  # the ensemble compiled (trainer.compile=true) beside eager
        "optim_rounds": 40,
        "optim_steps": 10,
        "ht": [],  # the preset as it is: paper scale
        "ht_grace": 30,
        "budget": 450,
    },
    "cpu": {
        "members": [1, 4, 16],
        "sine_epochs": 1,
        "sine_limit": 4,
        "sine_samples": 400,
        "resnet_batches": 2,
        "resnet_compile": False,
        "compile_members": [],  # inductor's C++ build takes minutes on a small CPU (tests/test_compile.py checks it)
        "optim_rounds": 3,
        "optim_steps": 2,
        "ht": [
            "ensemble.size=2",
            "task.n_samples=200",
            "model.hidden=16",
            "model.depth=2",
            "homotopy.gamma=2",
            "homotopy.k=1",
            "homotopy.source_epochs=1",
            "trainer.epochs=3",
        ],
        "ht_grace": 10,
        "budget": 110,
    },
}
#: longest time each section may take (seconds; the budget's deadline cuts them further), and the least it needs
CAPS = {"machine": 60, "cuda_tests": 150, "ensemble": 180, "versus_hand": 60, "resnet": 200, "optimizers": 45}
LEAST = {"machine": 5, "cuda_tests": 10, "ensemble": 10, "versus_hand": 5, "resnet": 15, "optimizers": 5, "ht_f1b": 20}
GOALS = {
    "ensemble_100_vs_1": 3.0,  # issue 15 (a GPU): a 100-member epoch <= 3x one member's
    "framework_vs_hand": 1.2,
    "resnet_epoch_s": 1.0,
    "lightning_vs_plain": 1.1,
    "inna_vs_sgd": 1.3,
    "step_tuned_vs_sgd": 1.5,
}


class Recorder:
    """A section's results, written to its JSON file after every change, so a section that dies midway keeps what
    it had measured."""

    def __init__(self, path: Path):
        self.path, self.data = path, {}

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, default=str))
        tmp.replace(self.path)


# -- the sections (each runs in its own forked process) ------------------------------------------------------------
def machine(rec: Recorder, ctx: dict) -> None:
    import platform
    from importlib import metadata

    import torch

    versions = {}
    for pkg in ("torch", "lightning", "hydra-core", "omegaconf", "numpy", "pytest"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "missing"
    rec["versions"] = versions
    rec["python"] = platform.python_version()
    rec["cpu_cores"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rec["torch_threads"] = torch.get_num_threads()
    rec["cuda"] = torch.cuda.is_available()
    if rec.data["cuda"]:
        props = torch.cuda.get_device_properties(0)
        rec["gpu"] = torch.cuda.get_device_name(0)
        rec["gpus"] = torch.cuda.device_count()
        rec["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
        rec["memory_gib"] = round(props.total_memory / 2**30, 1)
        rec["cuda_runtime"] = torch.version.cuda


def cuda_tests(rec: Recorder, ctx: dict) -> None:
    import xml.etree.ElementTree as ET

    import pytest

    files = [str(p) for p in sorted(TESTS.glob("test_*.py")) if "mark.cuda" in p.read_text()]
    rec["files"] = [Path(f).name for f in files]
    junit = ctx["work"] / "cuda_tests.xml"
    argv = [*files, "-m", "cuda", "-q", "-rfEs", f"--junitxml={junit}", f"--rootdir={ROOT}"]
    code = pytest.main([*argv, "-c", str(ROOT / "pyproject.toml"), "-p", "no:cacheprovider"])
    rec["exit_code"] = int(code)
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    rec["counts"] = counts
    rec["seconds_in_tests"] = float(suite.get("time", 0))
    problems, skipped = [], []
    for case in suite.iter("testcase"):
        name = f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"
        for kind in ("failure", "error"):
            found = case.find(kind)
            if found is not None:
                problems.append({"test": name, "kind": kind, "message": (found.get("message") or "")[:1500]})
        if case.find("skipped") is not None:
            skipped.append({"test": name, "reason": (case.find("skipped").get("message") or "")[:300]})
    rec["problems"] = problems
    rec["skipped"] = skipped


def ensemble(rec: Recorder, ctx: dict) -> None:
    import torch
    from bench_common import framework_run, sine_overrides, steady

    size, gpu = ctx["size"], ctx["gpu"]
    rec["steps_per_epoch"] = steps_per_epoch(size)
    for n in size["members"]:
        try:
            if gpu:
                torch.cuda.reset_peak_memory_stats()
            overrides = sine_overrides(n, 1 + size["sine_epochs"], gpu, size["sine_limit"], size["sine_samples"])
            ran = framework_run(overrides, ctx["work"] / "ensemble" / str(n))
            rec[str(n)] = {
                "train_s": steady(ran["epochs"], "train_s"),
                "epoch_s": steady(ran["epochs"], "epoch_s"),
                "epochs": ran["epochs"],
                "median_final_train_loss": ran["metrics"].get("train/loss"),
                **({"peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)} if gpu else {}),
            }
        except Exception as err:  # one size failing (memory, say) should not hide the others
            rec[str(n)] = failure(err)
    for n in size["compile_members"]:  # trainer.compile=true: the ensemble's forward through torch.compile
        try:
            overrides = sine_overrides(n, 1 + size["sine_epochs"], gpu, size["sine_limit"], size["sine_samples"])
            ran = framework_run([*overrides, "trainer.compile=true"], ctx["work"] / "ensemble" / f"{n}-compiled")
            rec[f"{n} compiled"] = {
                "train_s": steady(ran["epochs"], "train_s"),
                "epoch_s": steady(ran["epochs"], "epoch_s"),
                "epochs": ran["epochs"],
            }
        except Exception as err:
            rec[f"{n} compiled"] = failure(err)


def versus_hand(rec: Recorder, ctx: dict) -> None:
    import torch
    from bench_common import hand_written_epochs
    from sine_baseline import HandWrittenSine

    size = ctx["size"]
    device = torch.device("cuda" if ctx["gpu"] else "cpu")
    rec["steps_per_epoch"] = steps_per_epoch(size)
    for n in size["members"]:
        try:
            model = HandWrittenSine(n, device, n_samples=size["sine_samples"] or 10_000)
            timed = hand_written_epochs(model, size["sine_epochs"], size["sine_limit"])
            rec[str(n)] = {**timed, "optimizer": fused(model)}
            del model
        except Exception as err:
            rec[str(n)] = failure(err)


def resnet(rec: Recorder, ctx: dict) -> None:
    import torch
    from bench_common import framework_run, steady
    from bench_resnet import STEPS, plain_epoch, resnet_overrides

    size, gpu = ctx["size"], ctx["gpu"]
    device = torch.device("cuda" if gpu else "cpu")
    batches = size["resnet_batches"]
    rec["steps_per_epoch"] = STEPS if batches is None else batches
    rec["data"] = "generated CIFAR-shaped images and labels (task.synthetic=true), held on the device"

    def lightning(extra: list[str], name: str, epochs: int) -> dict:
        overrides = resnet_overrides(batches, gpu, ["task.on_device=true", "trainer.checkpoint=false", *extra])
        ran = framework_run([*overrides, f"trainer.epochs={epochs}"], ctx["work"] / "resnet" / name)
        return {"train_s": steady(ran["epochs"], "train_s"), "epoch_s": steady(ran["epochs"], "epoch_s")}

    ways: dict[str, Callable[[], dict]] = {
        "plain eager": lambda: {"train_s": plain_epoch(batches, device)},
        "lightning eager": lambda: lightning([], "eager", 3),
    }
    if size["resnet_compile"]:
        ways["plain compiled"] = lambda: {"train_s": plain_epoch(batches, device, compile=True)}
        ways["lightning compiled"] = lambda: lightning(["trainer.compile=true"], "compiled", 2)
    else:
        rec["left_out"] = "the compiled ways (CPU size: inductor's C++ build takes minutes on a small CPU)"
    for name, way in ways.items():
        try:
            rec[name] = way()
        except Exception as err:  # one way failing should not hide the others
            rec[name] = failure(err)


def optimizers(rec: Recorder, ctx: dict) -> None:
    import torch
    from bench_optim import median_seconds, optimizer_steppers

    size = ctx["size"]
    device = torch.device("cuda" if ctx["gpu"] else "cpu")
    rec["what"] = "one step on ResNet-20's 59 parameter tensors (0.27M), gradients fixed; median over rounds"
    for wd in (0.0, 1e-4):
        t = median_seconds(optimizer_steppers(wd, device), device, size["optim_rounds"], size["optim_steps"])
        keys = {"SGD": "sgd_us", "INNA": "inna_us", "Step-Tuned SGD": "step_tuned_us"}
        rec[f"weight_decay={wd:g}"] = {keys[k]: v * 1e6 for k, v in t.items()}


def ht_f1b(rec: Recorder, ctx: dict) -> None:
    """The three methods as one packed sweep in one process (``hydra/launcher=packed``), stopped by SIGTERM at
    ``ctx['stop_at']``, then read from disk (every job's own folder)."""
    size, gpu = ctx["size"], ctx["gpu"]
    root = ctx["work"] / "ht_f1b"
    overrides = [
        "-m",
        "experiment=ht/sine_f1",
        f"method={','.join(HT_METHODS)}",
        "hydra/launcher=packed",
        *(["trainer=gpu"] if gpu else []),
        *size["ht"],
        f"hydra.sweep.dir={root}",
    ]
    rec["command"] = "optrepro-train " + " ".join(overrides)
    rec["paper_scale"] = not size["ht"]
    start = time.time()
    log = (ctx["work"] / "ht_f1b.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "optrepro.cli", *overrides], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    stop_at, grace = ctx["stop_at"], size["ht_grace"]
    while proc.poll() is None and time.time() < stop_at - grace:
        time.sleep(0.5)
    stopped = proc.poll() is None
    if stopped:
        proc.send_signal(signal.SIGTERM)  # the pack finishes its epoch, checkpoints and stops
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    rec["stopped_at_deadline"] = list(HT_METHODS) if stopped else []
    rec["wall_s"] = time.time() - start
    rec["exit_code"] = proc.returncode
    folders = {m: next(iter(sorted(root.glob(f"*method={m}*/seeds=*"))), root / m) for m in HT_METHODS}
    read = {m: read_ht_run(folders[m]) for m in HT_METHODS}
    rec["methods"] = {m: info for m, (info, _) in read.items()}
    rec["comparison"] = compare_ht(rec.data["methods"], {m: tables for m, (_, tables) in read.items()})


def read_ht_run(run_dir: Path) -> tuple[dict[str, Any], list]:
    """One method's ensemble from disk: (status, epochs done, the members' median losses at the last epoch all of
    them reached, a coarse curve of the median train loss; the members' metrics tables)."""
    import pandas as pd

    out: dict[str, Any] = {}
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        config = summary.get("config") or {}
        source = int((config.get("method") or {}).get("source_epochs") or 0)
        out.update(status=summary.get("status"), wall_time_s=summary.get("wall_time_s"), source_epochs=source)
        out["planned_epochs"] = source + int((config.get("trainer") or {}).get("epochs", 0))
        out["members"] = len(summary.get("members") or {}) or 1
    else:
        out["status"] = "no summary"
    files = sorted(run_dir.glob("seed=*/metrics.csv")) or [p for p in [run_dir / "metrics.csv"] if p.is_file()]
    tables = []
    for csv in files:
        try:
            tables.append(pd.read_csv(csv))
        except Exception as err:  # a member's file cut off by a kill: named, left out
            out.setdefault("unreadable", []).append(f"{csv.parent.name}: {type(err).__name__}: {err}")
    tables = [t for t in tables if len(t)]
    out["epochs_done"] = int(min(len(t) for t in tables)) if tables else 0
    if not tables:
        return out, tables
    last = min(int(t["epoch"].iloc[-1]) for t in tables)  # the last epoch every member reached
    out["last_budget_epoch"] = last
    out.update({f"median_{k}": v for k, v in medians_at(tables, last).items()})
    epochs = sorted(set.intersection(*(set(t["epoch"].astype(int)) for t in tables)))
    sampled = sorted({epochs[round(i * (len(epochs) - 1) / 10)] for i in range(11)})
    out["median_train_loss_by_epoch"] = {str(e): medians_at(tables, e).get("train/loss") for e in sampled}
    return out, tables


def medians_at(tables: list, epoch: int) -> dict[str, float]:
    """The members' median of each loss at ``epoch`` (members that reached it)."""
    out = {}
    for metric in ("train/loss", "test/loss"):
        values = [float(t.loc[t["epoch"] == epoch, metric].iloc[0]) for t in tables if metric in t]
        values = [v for v in values if v == v]  # a diverged member's NaN is left out
        if values:
            out[metric] = statistics.median(values)
    return out


def compare_ht(methods: dict[str, dict], tables: dict[str, list]) -> dict[str, Any]:
    """HT Figure 1b's claim (the homotopy's median final train loss below both baselines') at the last budget epoch
    that all three methods reached (each one's final epoch when all completed)."""
    reached = [m.get("last_budget_epoch") for m in methods.values()]
    if any(r is None or r < 0 for r in reached):
        return {"verdict": "not comparable: a method has not reached the first epoch of the target budget"}
    epoch = min(reached)
    medians = {name: medians_at(tables[name], epoch).get("train/loss") for name in methods}
    if any(v is None for v in medians.values()):
        return {"epoch": epoch, "verdict": "not comparable: a method has no train loss there"}
    complete = all(m.get("status") == "completed" for m in methods.values())
    homotopy, best = medians["data_homotopy"], min(medians["random_init"], medians["warm_start"])
    verdict = "homotopy lowest" if homotopy < best else "homotopy NOT lowest"
    return {
        "epoch": epoch,
        "median_train_loss": medians,
        "homotopy_vs_best_baseline": homotopy / best if best else None,
        "complete": complete,
        "verdict": verdict + ("" if complete else f" at budget epoch {epoch}, before the end (not the final losses)"),
    }


# -- helpers -------------------------------------------------------------------------------------------------------
def steps_per_epoch(size: dict) -> int:
    import math

    n_train = round(0.8 * (size["sine_samples"] or 10_000))
    full = math.ceil(n_train / 64)
    return full if size["sine_limit"] is None else min(full, size["sine_limit"])


def failure(err: BaseException) -> dict[str, str]:
    return {"error": f"{type(err).__name__}: {err}"[:2000], "traceback": traceback.format_exc()[-3000:]}


def fused(model) -> str:
    group = model.optimizer.param_groups[0]
    return "fused Adam" if group.get("fused") else "foreach Adam"


SECTIONS: dict[str, Callable[[Recorder, dict], None]] = {
    "machine": machine,
    "cuda_tests": cuda_tests,
    "ensemble": ensemble,
    "versus_hand": versus_hand,
    "resnet": resnet,
    "optimizers": optimizers,
    "ht_f1b": ht_f1b,
}


def run_section(name: str, timeout: float, ctx: dict) -> dict[str, Any]:
    """Run section ``name`` in a forked process (its own process group) for at most ``timeout`` seconds."""
    work: Path = ctx["work"]
    result, log = work / f"{name}.json", work / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    start = time.time()
    pid = os.fork()
    if pid == 0:  # the section's process
        code = 1
        try:
            os.setpgid(0, 0)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            # Python's streams on those descriptors, whatever sys.stdout was (pytest's capture, a pipe)
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
            rec = Recorder(result)
            try:
                SECTIONS[name](rec, ctx)
                code = 0
            except BaseException as err:
                rec.data["error"] = f"{type(err).__name__}: {err}"
                rec.data["traceback"] = traceback.format_exc()[-4000:]
                rec.save()
                traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass  # the child has already done it (or exec'd): either way it leads its group
    status, timed_out = None, False
    while status is None:
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(raw)
        elif time.time() - start > timeout:
            timed_out = True
            status = _kill_group(pid)
        else:
            time.sleep(0.1)
    data = json.loads(result.read_text()) if result.is_file() else {}
    data["seconds"] = round(time.time() - start, 1)
    if timed_out:
        data["status"] = "timed out"
        data["error"] = f"stopped after its limit of {timeout:.0f} s (what it had measured is kept)"
    elif status != 0:
        data["status"] = "failed"
        data.setdefault("error", f"its process ended with {status}" + (" (a signal)" if status < 0 else ""))
    else:
        data["status"] = "ok"
    if data["status"] != "ok":
        data["log_tail"] = tail(log, 60)
    return data


def _kill_group(pid: int) -> int:
    """SIGTERM to the section's process group, SIGKILL 5 s later if it is still there; its exit status."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 30.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        end = time.time() + wait
        while time.time() < end:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(raw)
            time.sleep(0.1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def tail(path: Path, lines: int) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def open_files_limit() -> int:
    """This process's soft limit of open files (an ensemble larger than ``records.KEEP_OPEN`` opens its members'
    metrics.csv per row, so the default limit must do)."""
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- the report ----------------------------------------------------------------------------------------------------
def ratios(results: dict) -> list[tuple[str, float | None, str]]:
    """(what, ratio, goal and verdict) for every ratio the check measured."""
    out = []

    def add(what: str, num: float | None, den: float | None, goal: float | None = None) -> None:
        value = num / den if num is not None and den else None
        if value is None:
            out.append((what, None, "not measured"))
        elif goal is None:
            out.append((what, value, ""))
        else:
            out.append((what, value, f"goal <= {goal:g}: {'met' if value <= goal else 'NOT met'}"))

    ens, hand = results.get("ensemble", {}), results.get("versus_hand", {})
    members = [k for k in ens if k.isdigit()] or [k for k in hand if k.isdigit()]
    one = _get(ens, "1", "epoch_s")
    for n in members:
        if n != "1":
            goal = GOALS["ensemble_100_vs_1"] if n == "100" else None
            add(f"sine ensemble, {n} members / 1 member, whole epoch", _get(ens, n, "epoch_s"), one, goal)
    for key in (k for k in ens if k.endswith(" compiled")):
        n = key.split()[0]
        add(f"sine ensemble, {n} members, compiled / eager, steps", _get(ens, key, "train_s"), _get(ens, n, "train_s"))
    for n in members:
        add(f"sine, framework / hand-written, {n} member(s), steps", _get(ens, n, "train_s"), _get(hand, n, "train_s"))
        add(
            f"sine, framework / hand-written, {n} member(s), whole epoch",
            _get(ens, n, "epoch_s"),
            _get(hand, n, "epoch_s"),
            GOALS["framework_vs_hand"],
        )
    res = results.get("resnet", {})
    for mode in ("eager", "compiled"):
        if f"plain {mode}" in res or f"lightning {mode}" in res:
            add(
                f"ResNet-20, Lightning / plain loop, {mode}, steps",
                _get(res, f"lightning {mode}", "train_s"),
                _get(res, f"plain {mode}", "train_s"),
                GOALS["lightning_vs_plain"],
            )
    if "plain compiled" in res:
        add(
            "ResNet-20, plain loop, compiled / eager",
            _get(res, "plain compiled", "train_s"),
            _get(res, "plain eager", "train_s"),
        )
    opt = results.get("optimizers", {})
    for key in (k for k in opt if k.startswith("weight_decay=")):
        add(
            f"INNA / SGD with momentum, {key}",
            _get(opt, key, "inna_us"),
            _get(opt, key, "sgd_us"),
            GOALS["inna_vs_sgd"],
        )
        add(
            f"Step-Tuned SGD (without its two gradients) / SGD, {key}",
            _get(opt, key, "step_tuned_us"),
            _get(opt, key, "sgd_us"),
            GOALS["step_tuned_vs_sgd"],
        )
    cmp = results.get("ht_f1b", {}).get("comparison", {})
    if cmp.get("homotopy_vs_best_baseline") is not None:
        out.append(
            (
                f"HT F1b, homotopy / best baseline, median train loss at budget epoch {cmp['epoch']}",
                cmp["homotopy_vs_best_baseline"],
                cmp["verdict"],
            )
        )
    return out


def _get(section: dict, key: str, field: str) -> float | None:
    value = section.get(key)
    return value.get(field) if isinstance(value, dict) and isinstance(value.get(field), int | float) else None


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table: whole above 100, one decimal above 10, else ``digits`` significant digits."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-" if value is None else str(value)
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}g}"


def markdown(report: dict) -> str:
    r, m = report["sections"], report["sections"].get("machine", {})
    gpu = (
        f"{m.get('gpu')} (compute capability {m.get('capability')}, {m.get('memory_gib')} GiB)"
        if m.get("cuda")
        else "no GPU"
    )
    v = m.get("versions", {})
    lines = [
        "# GPU check",
        "",
        f"{gpu}; {m.get('cpu_cores')} CPU cores; torch {v.get('torch')}, lightning {v.get('lightning')}, "
        f"hydra-core {v.get('hydra-core')}, Python {m.get('python')}. Size: **{report['size']}**"
        + (" (tiny CPU sizes: no speed claim)" if report["size"] == "cpu" else "")
        + f"; {report['wall_s']:.0f} s of a {report['budget_s']:.0f} s budget; {report['started']}. Open files "
        f"allowed: {report['open_files_limit']} (left as the machine sets it).",
        "",
        "| section | status | seconds | note |",
        "|---|---|---|---|",
    ]
    for name, data in r.items():
        lines.append(
            f"| {name} | {data.get('status')} | {fmt(data.get('seconds'))} | {str(data.get('error', ''))[:200]} |"
        )
    t = r.get("cuda_tests", {})
    if "counts" in t:
        c = t["counts"]
        lines += [
            "",
            f"## CUDA tests ({', '.join(t.get('files', []))})",
            "",
            f"{c['passed']} passed, {c['failures']} failed, {c['errors']} errors, {c['skipped']} skipped.",
        ]
        lines += [f"- **{p['kind']}** `{p['test']}`: {p['message'][:300]}" for p in t.get("problems", [])]
        if c["skipped"] and t.get("skipped"):
            lines.append(f"- skipped: {t['skipped'][0]['reason']}")
    ens, hand = r.get("ensemble", {}), r.get("versus_hand", {})
    members = [k for k in ens if k.isdigit()] or [k for k in hand if k.isdigit()]
    if members:
        steps = ens.get("steps_per_epoch") or hand.get("steps_per_epoch")
        lines += [
            "",
            f"## Sine ensemble: framework and hand-written loop ({steps} steps of batch 64 per epoch)",
            "",
            "| members | framework steps s/epoch | ms/step | framework whole epoch s | hand-written steps s/epoch "
            "| hand-written whole epoch s | framework / hand-written (epoch) |",
            "|---|---|---|---|---|---|---|",
        ]
        for n in members:
            fs, fe = _get(ens, n, "train_s"), _get(ens, n, "epoch_s")
            hs, he = _get(hand, n, "train_s"), _get(hand, n, "epoch_s")
            ms = fs / steps * 1e3 if fs and steps else None
            ratio = fe / he if fe and he else None
            lines.append(f"| {n} | {fmt(fs)} | {fmt(ms)} | {fmt(fe)} | {fmt(hs)} | {fmt(he)} | {fmt(ratio, 2)} |")
        for n in members:
            for who, section in (("framework", ens), ("hand-written", hand)):
                if isinstance(section.get(n), dict) and "error" in section[n]:
                    lines.append(f"- {who}, {n} members failed: {section[n]['error'][:300]}")
    res = r.get("resnet", {})
    ways = [k for k in ("plain eager", "lightning eager", "plain compiled", "lightning compiled") if k in res]
    if ways:
        lines += [
            "",
            f"## ResNet-20, batch 128, {res.get('steps_per_epoch')} steps per epoch ({res.get('data')})",
            "",
            "| way | steps s/epoch | whole epoch s (with the test split's evaluation) |",
            "|---|---|---|",
        ]
        for w in ways:
            d = res[w]
            lines.append(
                f"| {w} | {fmt(d.get('train_s'))} | {fmt(d.get('epoch_s'))} |"
                if "error" not in d
                else f"| {w} | failed: {d['error'][:150]} | |"
            )
        if res.get("left_out"):
            lines.append(f"\nLeft out: {res['left_out']}.")
    opt = r.get("optimizers", {})
    keys = [k for k in opt if k.startswith("weight_decay=")]
    if keys:
        lines += [
            "",
            f"## Optimizers ({opt.get('what')})",
            "",
            "| | SGD + momentum us | INNA us | Step-Tuned SGD us |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {k} | {fmt(opt[k]['sgd_us'])} | {fmt(opt[k]['inna_us'])} | {fmt(opt[k]['step_tuned_us'])} |"
            for k in keys
        ]
    ht = r.get("ht_f1b", {})
    if ht.get("methods"):
        scale = "paper scale" if ht.get("paper_scale") else "CPU size (not paper scale)"
        stopped = ", ".join(ht.get("stopped_at_deadline") or []) or "none"
        lines += [
            "",
            f"## HT Figure 1b, {scale}: the three methods packed into one process",
            "",
            f"Wall time {fmt(ht.get('wall_s'))} s; stopped at the deadline: {stopped}.",
            "",
            "| method | status | epochs done / planned | last budget epoch | median train/loss there "
            "| median test/loss | s per epoch | projected s for all epochs |",
            "|---|---|---|---|---|---|---|---|",
        ]
        projections = []
        for name, d in ht["methods"].items():
            done, planned, wall = d.get("epochs_done"), d.get("planned_epochs"), d.get("wall_time_s")
            per = wall / done if done and wall else None
            projected = per * planned if per and planned else None
            projections.append(projected)
            lines.append(
                f"| {name} | {d.get('status')} | {done} / {planned} | {d.get('last_budget_epoch')} | "
                f"{fmt(d.get('median_train/loss'), 4)} | {fmt(d.get('median_test/loss'), 4)} | {fmt(per)} | "
                f"{fmt(projected)} |"
            )
        if all(projections):
            lines.append(
                f"\nThe whole figure, one pack, projected: {fmt(max(projections))} s "
                f"({max(projections) / 60:.1f} min; seconds per epoch = the pack's wall time / its epochs)."
            )
        lines += [
            "",
            f"Claim (HT F1b: the homotopy's median final train loss below both baselines'): "
            f"{ht.get('comparison', {}).get('verdict')}.",
        ]
    lines += ["", "## Ratios", ""]
    for what, value, goal in report["ratios"]:
        lines.append(f"- {what}: **{'-' if value is None else f'{value:.2f}x'}**" + (f" ({goal})" if goal else ""))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "gpu-check", help="where the summaries go")
    parser.add_argument(
        "--budget", type=float, help="seconds for the whole check (default: 450 on a GPU, 110 on a CPU)"
    )
    parser.add_argument("--cpu-size", action="store_true", help="tiny sizes on the CPU (the default without CUDA)")
    parser.add_argument("--only", help="comma-separated sections to run (machine always runs)")
    parser.add_argument("--skip", default="", help="comma-separated sections to leave out (e.g. ht_f1b)")
    parser.add_argument("--ht", nargs="*", default=[], help="extra overrides of the HT F1b runs (trainer.epochs=500)")
    parser.add_argument("--work", type=Path, help="where runs write (default: a temporary folder, removed at the end)")
    args = parser.parse_args(argv)
    started = time.time()
    files_limit = open_files_limit()
    work = args.work or Path(tempfile.mkdtemp(prefix="optrepro-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    # the sections fork from here: import what they share once, but never touch CUDA in this process
    for module in ("torch", "lightning", "pandas", "optrepro.train", "optrepro.config", "bench_common"):
        try:
            __import__(module)
        except Exception as err:  # the sections that need it report it
            print(f"gpu-check: importing {module} failed ({type(err).__name__}: {err})", file=sys.stderr)
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized():
        print("gpu-check: CUDA was initialized before the sections fork: they may fail to use it", file=sys.stderr)
    wanted = set(SECTIONS) if not args.only else {"machine", *args.only.split(",")}
    wanted -= set(filter(None, args.skip.split(",")))
    unknown = wanted - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; the sections are {', '.join(SECTIONS)}")
    ctx: dict[str, Any] = {"work": work, "gpu": False, "size": SIZES["cpu"]}
    results: dict[str, dict] = {}
    results["machine"] = run_section("machine", CAPS["machine"], ctx)
    gpu = bool(results["machine"].get("cuda")) and not args.cpu_size
    size_name = "gpu" if gpu else "cpu"
    ctx.update(gpu=gpu, size={**SIZES[size_name], "ht": [*SIZES[size_name]["ht"], *args.ht]})
    budget = args.budget or SIZES[size_name]["budget"]
    deadline = started + budget
    print(f"gpu-check: {size_name} size, budget {budget:.0f} s, runs in {work}", flush=True)
    order = [s for s in SECTIONS if s != "machine" and s in wanted]
    for i, name in enumerate(order):
        later = sum(LEAST[s] for s in order[i + 1 :] if s != "ht_f1b")
        left = deadline - time.time() - 5  # 5 s to write the summaries
        timeout = left - later if name == "ht_f1b" else min(CAPS[name], left - later)
        if timeout < LEAST[name]:
            results[name] = {"status": "skipped", "error": f"not enough time left ({max(0, left):.0f} s)"}
        else:
            ctx["stop_at"] = time.time() + timeout - 3
            results[name] = run_section(name, timeout, ctx)
        print(
            f"gpu-check: {name:12s} {results[name]['status']:9s} {results[name].get('seconds', 0):6.1f} s "
            f"{results[name].get('error', '')}",
            flush=True,
        )
    report = {
        "kind": "optrepro gpu-check",
        "size": size_name,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "budget_s": budget,
        "open_files_limit": files_limit,
        "wall_s": time.time() - started,
        "sections": results,
    }
    report["ratios"] = ratios(results)
    (args.out / "gpu-check.json").write_text(json.dumps(report, indent=1, default=str))
    text = markdown(report)
    (args.out / "gpu-check.md").write_text(text)
    logs = [f"===== {p.stem} =====\n{tail(p, 200)}" for p in sorted((work / "logs").glob("*.log"))]
    (args.out / "gpu-check.log").write_text("\n".join(logs) + "\n")
    print(text)
    print(f"gpu-check: wrote {args.out / 'gpu-check.json'}, gpu-check.md and gpu-check.log")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    failed = [n for n, d in results.items() if d.get("status") not in ("ok", "skipped")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
