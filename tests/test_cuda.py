"""The GPU paths (issue 15): the sine ensemble, on-device image data, ``trainer.compile``, DDP with NCCL and the
optimizers on CUDA, each against the path that CI runs on a CPU. Marked ``cuda``: skipped without a CUDA device
(tests/conftest.py), run by ``make gpu-check`` (``pytest -m cuda``) on a machine with one."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import read_metrics

from optrepro.config import compose
from optrepro.optim import INNA, StepTunedSGD
from optrepro.train import run

pytestmark = pytest.mark.cuda

SMOKE_LENET = ["experiment=th/f4_6e", "profile=smoke", "optimizer=sgd", "optimizer.lr=0.05"]


def columns_close(a, b, columns, rtol, atol=1e-6):
    for column in columns:
        np.testing.assert_allclose(a[column], b[column], rtol=rtol, atol=atol, err_msg=column)


def test_the_sine_ensemble_on_the_gpu_matches_the_cpu(make_cfg, tmp_path):
    """Three members, source pre-training and two homotopy steps on CUDA give the CPU's numbers (float rounding:
    the batched kernels differ), and the three members differ from each other."""
    overrides = ("ensemble.size=3", "trainer.epochs=3")
    run(make_cfg(*overrides, "trainer=gpu", run_dir=tmp_path / "gpu"))
    run(make_cfg(*overrides, run_dir=tmp_path / "cpu"))
    for seed in (0, 1, 2):
        gpu, cpu = read_metrics(tmp_path / "gpu" / f"seed={seed}"), read_metrics(tmp_path / "cpu" / f"seed={seed}")
        assert len(gpu) == len(cpu) == 4
        columns_close(gpu, cpu, ("train/objective", "train/loss", "test/loss"), rtol=1e-3, atol=1e-5)
    a, b = read_metrics(tmp_path / "gpu" / "seed=0"), read_metrics(tmp_path / "gpu" / "seed=1")
    assert np.abs(a["train/loss"].values - b["train/loss"].values).max() > 1e-4


def test_image_data_held_on_the_gpu_trains_as_data_in_host_memory(tmp_path):
    """``task.on_device=true`` draws the same batches on the GPU that the host path copies there."""
    for where in ("true", "false"):
        run(compose([*SMOKE_LENET, "trainer=gpu", f"task.on_device={where}", f"paths.run_dir={tmp_path / where}"]))
    device, host = read_metrics(tmp_path / "true"), read_metrics(tmp_path / "false")
    assert len(device) == len(host) >= 1
    columns_close(device, host, ("train/loss", "test/loss", "test/acc"), rtol=1e-4)


def test_a_compiled_model_on_the_gpu_gives_the_eager_numbers(tmp_path):
    for compiled in ("false", "true"):
        cfg = compose(
            [*SMOKE_LENET, "trainer=gpu", f"trainer.compile={compiled}", f"paths.run_dir={tmp_path / compiled}"]
        )
        run(cfg)
    eager, compiled = read_metrics(tmp_path / "false"), read_metrics(tmp_path / "true")
    columns_close(eager, compiled, ("train/loss", "test/loss"), rtol=1e-3)


def test_ddp_with_nccl_on_one_gpu_finishes_and_writes_its_summary(tmp_path):
    command = [sys.executable, "-m", "optrepro.cli", *SMOKE_LENET, "trainer=ddp", "trainer.devices=1"]
    command.append(f"paths.run_dir={tmp_path / 'run'}")
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert read_metrics(tmp_path / "run")["step"].iloc[-1] > 0


@pytest.mark.parametrize("make", [lambda p: INNA(p, lr=0.05, weight_decay=1e-3), lambda p: StepTunedSGD(p, lr=0.05)])
def test_the_optimizers_take_the_same_steps_on_cuda_as_on_the_cpu(make):
    """INNA (foreach on CUDA) and Step-Tuned SGD (its closure evaluated twice) on a least-squares problem."""
    g = torch.Generator().manual_seed(0)
    x, y, w0 = torch.randn(32, 5, generator=g), torch.randn(32, generator=g), torch.randn(5, generator=g)
    results = []
    for device in ("cpu", "cuda"):
        w = torch.nn.Parameter(w0.clone().to(device))
        opt = make([w])
        xd, yd = x.to(device), y.to(device)

        def closure(w=w, opt=opt, xd=xd, yd=yd):
            opt.zero_grad()
            loss = (xd @ w - yd).pow(2).mean()
            loss.backward()
            return loss

        for _ in range(5):
            opt.step(closure)
        results.append(w.detach().cpu())
    torch.testing.assert_close(results[1], results[0], rtol=1e-5, atol=1e-6)
    assert not torch.equal(results[0], w0)  # it moved


def test_a_packed_sweep_on_the_gpu_gives_the_cpu_rows(tmp_path):
    """hydra/launcher=packed with trainer=gpu: the three methods x two omegas x two lrs as one ensemble on CUDA
    (MemberAdam, members that wait, the shared source pre-training), each job's rows equal to the CPU pack's to float
    rounding."""
    from conftest import tiny

    sweep = [*tiny("ensemble.size=2"), "method=random_init,warm_start,data_homotopy", "task.omega=30,137"]
    sweep += ["optimizer.lr=1e-3,3e-3", "hydra/launcher=packed"]
    for where in ("gpu", "cpu"):
        cmd = [sys.executable, "-m", "optrepro.cli", "-m", *sweep, f"trainer={where}"]
        cmd.append(f"hydra.sweep.dir={tmp_path / where}")
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    rows = sorted(p.relative_to(tmp_path / "cpu") for p in (tmp_path / "cpu").rglob("seed=*/metrics.csv"))
    assert len(rows) == 24
    for rel in rows:
        gpu, cpu = read_metrics((tmp_path / "gpu" / rel).parent), read_metrics((tmp_path / "cpu" / rel).parent)
        assert len(gpu) == len(cpu) >= 3
        columns_close(gpu, cpu, ("train/loss", "test/loss"), rtol=1e-3, atol=1e-5)
