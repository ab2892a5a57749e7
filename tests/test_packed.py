"""Packed sweeps (``hydra/launcher=packed``): which jobs pack, the per-member Adam, and a packed sweep against the
same sweep run job by job (the same folders, the same rows), after a crash too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from optrepro.optim.member_adam import MemberAdam
from optrepro.packing import plan

# -- which jobs pack -------------------------------------------------------------------------------------------------


def job(**changes) -> dict:
    """A resolved HT sine config, reduced to the nodes packing looks at, with ``changes`` (dotted keys)."""
    config = {
        "name": "ht/sine_f1",
        "seed": 0,
        "ensemble": {"size": 5},
        "task": {"_target_": "optrepro.data.sine.SineDataModule", "name": "sine", "omega": 137, "n_samples": 10000},
        "method": {"_target_": "optrepro.methods.DataHomotopy", "name": "random_init", "source_epochs": 0},
        "homotopy": {"gamma": 10, "k": 200, "source_epochs": 100},
        "optimizer": {"_target_": "torch.optim.Adam", "lr": 1e-3, "betas": [0.9, 0.999], "weight_decay": 0.0},
        "schedule": {"_target_": "optrepro.optim.schedules.Constant"},
        "trainer": {"epochs": 2500, "compile": False, "strategy": "auto"},
        "paths": {"run_dir": None},
        "callbacks": None,
        "logger": None,
    }
    for key, value in changes.items():
        *parents, last = key.split("__")
        node = config
        for part in parents:
            node = node[part]
        node[last] = value
    return config


def test_jobs_that_differ_in_per_member_keys_pack_together():
    warm = {"_target_": "optrepro.methods.DataHomotopy", "name": "warm_start", "source_epochs": 100}
    jobs = [job(), job(method=warm), job(task__omega=74), job(optimizer__lr=3e-3), job(seed=5, ensemble__size=100)]
    result = plan(jobs, [5, 5, 5, 5, 100])
    assert result.packs == [[0, 1, 2, 3, 4]] and not result.alone and not result.apart


def test_keys_that_cannot_vary_per_member_keep_jobs_apart_and_the_plan_names_them():
    cosine = {"_target_": "optrepro.optim.schedules.Cosine", "min_factor": 0.0}
    jobs = [job(), job(seed=1), job(schedule=cosine), job(schedule=cosine, seed=1), job(trainer__epochs=10)]
    result = plan(jobs, [5] * 5)
    assert result.packs == [[0, 1], [2, 3]]
    assert result.alone == {4: "no other job of the sweep differs from it only in per-member keys"}
    assert result.apart == ["schedule._target_", "schedule.min_factor", "trainer.epochs"]
    assert "kept apart by schedule._target_, schedule.min_factor, trainer.epochs" in result.messages()[-1]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1}}, "optimizer torch.optim.SGD has no per-member"),
        ({"optimizer__amsgrad": True}, "optimizer.amsgrad has no per-member form"),
        ({"task": {"_target_": "optrepro.data.ode.ODEDataModule", "name": "gc_lorenz"}}, "is not the sine task"),
        ({"method__form": "gaussian_filter"}, "with method.form=gaussian_filter is not a data-homotopy method"),
        ({"callbacks": {"early_stopping": {}}}, "callbacks=early_stopping act on one run's curve"),
    ],
)
def test_a_job_the_pack_cannot_serve_exactly_runs_alone_saying_why(change, reason):
    result = plan([job(**change), job(**change, seed=1)], [5, 5])
    assert result.packs == [] and all(reason in why for why in result.alone.values()), result.alone


def test_a_per_step_lr_schedule_keeps_methods_with_other_source_epochs_apart():
    """Its factor follows each member's own step count: random init (no source epochs) cannot share it with warm
    start (100), but two warm starts can."""
    step = {"_target_": "optrepro.optim.schedules.InversePower", "interval": "step"}
    warm = {"_target_": "optrepro.methods.DataHomotopy", "name": "warm_start", "source_epochs": 100}
    jobs = [job(schedule=step), job(schedule=step, method=warm), job(schedule=step, method=warm, seed=9)]
    result = plan(jobs, [5] * 3)
    assert result.packs == [[1, 2]] and result.apart == ["method.source_epochs (with an lr schedule per step)"]


def test_max_members_splits_a_pack_into_whole_jobs():
    result = plan([job(seed=s) for s in (0, 5, 10)] + [job(seed=20, ensemble__size=12)], [5, 5, 5, 12], 10)
    assert result.packs == [[0, 1]] and set(result.alone) == {2, 3}
    assert "exceed hydra.launcher.max_members=10" in result.alone[3]


# -- the per-member Adam ---------------------------------------------------------------------------------------------


def test_member_adam_is_each_members_own_adam_with_its_rate_and_its_late_start():
    """Member i at rate lrs[i], starting after ``late[i]`` steps, ends where torch's Adam on member i alone (started
    then, at that rate) ends; a waiting member does not move, even with weight decay."""
    torch.manual_seed(0)
    lrs, late, steps = [1e-3, 3e-3, 1e-3, 5e-4], [0, 0, 4, 9], 12
    start = [torch.randn(4, 6, 3), torch.randn(4, 3)]
    stacked = [p.clone().requires_grad_() for p in start]
    packed = MemberAdam(stacked, lrs, weight_decay=0.01)
    alone = [[p[i].clone().requires_grad_() for p in start] for i in range(4)]
    adams = [torch.optim.Adam(a, lr=lrs[i], weight_decay=0.01) for i, a in enumerate(alone)]
    for t in range(steps):
        grads = [torch.randn_like(p) for p in start]
        active = torch.tensor([t >= s for s in late])
        packed.active = active
        for p, g in zip(stacked, grads):
            p.grad = g * active.view(-1, *[1] * (g.dim() - 1))  # a waiting member's loss is masked: zero gradient
        packed.step()
        for i in range(4):
            if active[i]:
                for a, g in zip(alone[i], grads):
                    a.grad = g[i].clone()
                adams[i].step()
    for i in range(4):
        for p, a in zip(stacked, alone[i]):
            torch.testing.assert_close(p[i], a, rtol=1e-6, atol=1e-7)
    assert packed.member_steps().tolist() == [steps - s for s in late]
    assert [round(lr, 12) for lr in packed.member_lrs()] == lrs


def test_member_adam_copies_and_resets_members_state():
    p = torch.zeros(3, 2, requires_grad=True)
    adam = MemberAdam([p], [1e-3] * 3)
    p.grad = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    adam.step()
    adam.copy_members([0], [2])
    state = adam.state[p]  # the group's state: its parameters' [members, ...] blocks, flat
    exp_avg, exp_avg_sq = (state[k].view(3, 2) for k in ("exp_avg", "exp_avg_sq"))
    assert torch.equal(exp_avg[2], exp_avg[0]) and not torch.equal(exp_avg[1], exp_avg[0])
    assert state["step"].tolist() == [1, 1, 1]
    adam.reset(torch.tensor([False, True, False]))
    assert state["step"].tolist() == [1, 0, 1] and not exp_avg_sq[1].any() and exp_avg_sq[0].all()


# -- packed sweeps against job-by-job sweeps -------------------------------------------------------------------------

TINY = [
    "experiment=ht/sine_f1",
    "ensemble.size=2",
    "task.n_samples=300",
    "model.hidden=16",
    "homotopy.gamma=2",
    "homotopy.k=1",
    "homotopy.source_epochs=2",
    "trainer.epochs=3",
    "method=random_init,warm_start,data_homotopy",
]


def sweep(folder: Path, *overrides: str, packed: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    launcher = ["hydra/launcher=packed"] if packed else []
    cmd = [sys.executable, "-m", "optrepro.cli", "-m", *TINY, *overrides, *launcher, f"hydra.sweep.dir={folder}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def said(proc: subprocess.CompletedProcess) -> str:
    """What a sweep printed: Hydra's log (stdout) and the runs' messages (stderr)."""
    return proc.stdout + proc.stderr


def records(folder: Path) -> dict[str, pd.DataFrame]:
    """Every member's rows by its folder (relative to the sweep), the pack's own folder left out."""
    return {
        str(p.parent.relative_to(folder)): pd.read_csv(p)
        for p in sorted(folder.rglob("metrics.csv"))
        if ".packed" not in p.parts
    }


def assert_same_records(a: Path, b: Path) -> None:
    left, right = records(a), records(b)
    assert left and left.keys() == right.keys()
    for name in left:
        pd.testing.assert_frame_equal(left[name], right[name], rtol=1e-5, atol=1e-7, obj=name)
    for summary in a.rglob("summary.json"):
        if ".packed" in summary.parts:
            continue
        mine, theirs = (json.loads(p.read_text()) for p in (summary, b / summary.relative_to(a)))
        assert mine["status"] == theirs["status"] == "completed" and mine["config_hash"] == theirs["config_hash"]


@pytest.mark.usefixtures("one_thread")
def test_a_packed_sweep_gives_every_job_its_per_job_folder_and_rows(tmp_path):
    """3 methods x 2 omegas x 2 lrs, fresh optimizer at the switch, 2 seeds each: one pack of 24 members, rows
    equal to the 12 jobs run one by one; a second schedule keeps its jobs in a pack of their own."""
    extra = ["task.omega=30,137", "optimizer.lr=1e-3,3e-3", "homotopy.optimizer_at_switch=fresh"]
    packed = sweep(tmp_path / "packed", *extra, "schedule=constant,cosine")
    assert packed.returncode == 0, packed.stderr[-3000:]
    assert said(packed).count("train as one ensemble") == 2
    assert "kept apart by schedule._target_, schedule.min_factor" in said(packed)
    alone = sweep(tmp_path / "alone", *extra, "schedule=constant,cosine", packed=False)
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert_same_records(tmp_path / "packed", tmp_path / "alone")
    # the shared source pre-training: warm start and the homotopy of one seed, omega and lr have the same rows
    # (folders found from their summaries: names this long end with a hash)
    source: dict[tuple, dict[str, pd.DataFrame]] = {}
    for csv in (tmp_path / "packed").rglob("seed=*/metrics.csv"):
        member = json.loads((csv.parent / "summary.json").read_text())
        config = member["config"]
        key = (member["seed"], config["task"]["omega"], config["optimizer"]["lr"], config["schedule"]["_target_"])
        df = pd.read_csv(csv)
        source.setdefault(key, {})[member["method"]] = df[df.epoch < 0]
    assert len(source) == 16
    for key, methods in source.items():
        assert len(methods["warm_start"]) == 2 and methods["random_init"].empty, key
        pd.testing.assert_frame_equal(methods["warm_start"], methods["data_homotopy"], obj=str(key))

    rerun = sweep(tmp_path / "packed", *extra, "schedule=constant,cosine")
    assert rerun.returncode == 0 and said(rerun).count("finished already: skipped") == 24, said(rerun)[-2000:]


@pytest.mark.usefixtures("one_thread")
def test_a_packed_sweep_killed_midway_resumes_and_ends_as_the_uninterrupted_one(tmp_path):
    """kill -9 once the pack has checkpointed an epoch; the same command resumes from the pack's checkpoint and
    every job ends with the rows of the uninterrupted job-by-job sweep."""
    slow = ["task.n_samples=2000", "trainer.epochs=10", "trainer.checkpoint=true", "trainer.checkpoint_every=1"]
    folder = tmp_path / "packed"
    cmd = [sys.executable, "-m", "optrepro.cli", "-m", *TINY, *slow, "hydra/launcher=packed"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*cmd, f"hydra.sweep.dir={folder}"], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not list(folder.glob(".packed/*/checkpoints/last.ckpt")) and time.monotonic() < deadline:
        assert proc.poll() is None, "the sweep ended before its first checkpoint"
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    statuses = {json.loads(p.read_text())["status"] for p in folder.glob("*/seeds=0-1/summary.json")}
    assert statuses == {"running"}, "the sweep was not caught midway"
    again = sweep(folder, *slow)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in said(again)
    alone = sweep(tmp_path / "alone", *slow, packed=False)
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert_same_records(folder, tmp_path / "alone")


@pytest.mark.usefixtures("one_thread")
def test_a_rerun_at_a_shrinking_profile_finds_its_finished_jobs(tmp_path):
    """At profile=quick the config that ran is the scaled one: a rerun must recognise it (scaling the scaled config
    again would not match), leave the jobs out and say so."""
    quick = ["experiment=ht/sine_f1", "profile=quick", "method=random_init,warm_start", "trainer.epochs=20"]
    quick += ["homotopy.source_epochs=10", "homotopy.gamma=1", "homotopy.k=10", "model.hidden=8", "model.depth=2"]
    cmd = [sys.executable, "-m", "optrepro.cli", "-m", *quick, "hydra/launcher=packed", f"hydra.sweep.dir={tmp_path}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0 and "train as one ensemble" in said(first), said(first)[-3000:]
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0 and said(again).count("finished already: skipped") == 2, said(again)[-3000:]
