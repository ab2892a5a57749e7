"""scripts/th_deep.sh: stage two runs each optimizer with what optrepro.grid chose from stage one's runs on disk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_grid import fake_run

ROOT = Path(__file__).resolve().parents[1]


def fake_tools(bin_dir: Path, log: Path) -> None:
    """optrepro-train and optrepro-report that only record their arguments; python is this interpreter."""
    bin_dir.mkdir()
    for tool in ("optrepro-train", "optrepro-report"):
        (bin_dir / tool).write_text(f'#!/usr/bin/env bash\necho "{tool} $*" >> {log}\n')
        (bin_dir / tool).chmod(0o755)
    (bin_dir / "python").write_text(f'#!/usr/bin/env bash\nexec {sys.executable} "$@"\n')
    (bin_dir / "python").chmod(0o755)


def test_stage_two_reads_stage_one(tmp_path):
    out, log = tmp_path / "outputs", tmp_path / "calls.txt"
    fake_tools(tmp_path / "bin", log)
    grid = out / "multirun" / "th" / "grid" / "f4_4a"
    lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    best = {"sgd": 1e-1, "inna": 1e-2, "rmsprop": 1e-3}
    for opt in ("sgd", "inna", "rmsprop"):
        fixed = [f"optimizer={opt}"] + (["schedule=constant"] if opt == "rmsprop" else [])
        for lr in lrs:
            fake_run(grid, [*fixed, f"optimizer.lr={lr}"], [1.0, 0.1 if lr == best[opt] else 0.5])
    for lr in lrs:
        for nu in (1.0, 2.0, 5.0):
            over = ["optimizer=step_tuned_sgd", "optimizer.decay=none", f"optimizer.lr={lr}", f"optimizer.nu={nu}"]
            fake_run(grid, over, [1.0, 0.05 if (lr, nu) == (1.0, 5.0) else 0.5])
        for b1 in (0.1, 0.5, 0.9, 0.99):
            over = ["optimizer=adam", "schedule=constant", f"optimizer.betas=[{b1},0.999]", f"optimizer.lr={lr}"]
            fake_run(grid, over, [1.0, 0.01 if (lr, b1) == (1e-4, 0.99) else 0.5])
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "OPTREPRO_OUT": str(out),
           "PYTHONPATH": str(ROOT / "src")}  # fmt: skip
    done = subprocess.run(["bash", str(ROOT / "scripts/th_deep.sh"), "fig4.5", "a", "trainer=gpu"], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    train = [c for c in calls if c.startswith("optrepro-train")]
    assert len(train) == 5 and all("sweep=th/seeds3" in c and c.endswith("trainer=gpu") for c in train)
    assert "optimizer=sgd optimizer.lr=0.1 task.reuse_batch=2" in train[0]
    assert "optimizer=step_tuned_sgd optimizer.decay=none optimizer.nu=5.0 optimizer.lr=1.0 hydra" in train[1]
    assert "optimizer=inna optimizer.lr=0.01 task.reuse_batch=2" in train[2]
    assert "optimizer=rmsprop schedule=constant optimizer.lr=0.001 task.reuse_batch=2" in train[3]
    assert "optimizer=adam schedule=constant optimizer.betas=[0.99,0.999] optimizer.lr=0.0001" in train[4]
    # Figure 4.5: everyone but Step-Tuned SGD (which already uses each minibatch twice) reuses its minibatches
    assert all("task.reuse_batch=2" in train[i] for i in (0, 2, 3, 4)) and "reuse_batch" not in train[1]
    assert calls[-1].startswith("optrepro-report") and "fig4.5/f4_4a" in calls[-1]
    assert (grid / "choice_adam.csv").is_file()


def test_stage_two_without_stage_one_names_the_fix(tmp_path):
    fake_tools(tmp_path / "bin", tmp_path / "calls.txt")
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "OPTREPRO_OUT": str(tmp_path),
           "PYTHONPATH": str(ROOT / "src")}  # fmt: skip
    done = subprocess.run(["bash", str(ROOT / "scripts/th_deep.sh"), "fig4.4", "b"], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0 and "run stage one first (make th-grid)" in done.stderr


FAKE_TRAIN = """#!{python}
# Stands in for optrepro-train -m: writes one finished run per grid point of the sweep file and the command line
# (seed 0), with a train loss lowest at lr 1e-2, alpha - beta smallest, q 0.25.
import itertools, json, math, sys
from pathlib import Path
from optrepro.grid import read_sweep
import pytest
from test_grid import fake_run
args = sys.argv[2:]
with open("{log}", "a") as f:
    f.write("optrepro-train " + " ".join(args) + "\\n")
out = Path(next(a.split("=", 1)[1] for a in args if a.startswith("hydra.sweep.dir=")))
sweep = read_sweep(next(a.split("=", 1)[1] for a in args if a.startswith("sweep=")))
given = [a for a in args if not a.startswith(("hydra.", "experiment=", "sweep=", "trainer="))]
for combo in itertools.product(*sweep.grid.values()):
    over = dict(a.split("=", 1) for a in given)
    over.update({{k: str(v) for k, v in sweep.fixed_text.items()}})
    over.update({{k: str(v).replace(" ", "") for k, v in zip(sweep.grid, combo)}})
    num = lambda k, d: float(over.get(k, d))
    loss = abs(math.log10(num("optimizer.lr", 0.1)) + 2) + num("optimizer.alpha", 0.5) - num("optimizer.beta", 0.1)
    loss += abs(num("schedule.exponent", 0.5) - 0.25) + 2
    fake_run(out, [f"{{k}}={{v}}" for k, v in sorted(over.items())], [5.0, loss])
"""


@pytest.mark.slow
def test_chapter_two_chain(tmp_path):
    """Figure 2: grid -> 2.2 at INNA's chosen gamma_0 -> 2.3 with the best (alpha, beta) of 2.2 -> 2.4, 3 reports."""
    out, log = tmp_path / "outputs", tmp_path / "calls.txt"
    fake_tools(tmp_path / "bin", log)
    train = tmp_path / "bin" / "optrepro-train"
    train.write_text(FAKE_TRAIN.format(python=sys.executable, log=log))
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "OPTREPRO_OUT": str(out),
           "PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'tests'}"}  # fmt: skip
    done = subprocess.run(["bash", str(ROOT / "scripts/th_deep.sh"), "fig2", "cifar10"], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    train_calls = [c for c in calls if c.startswith("optrepro-train")]
    assert [c.split("sweep=")[1].split()[0] for c in train_calls] == (
        ["th/grid_inna", "th/grid_sgd", "th/grid_adagrad", "th/grid_adam"] + ["th/seeds5"] * 8 + ["th/f2_4"]
    )
    f2_2 = [c for c in train_calls if "f2_2/f2_cifar10" in c]
    assert len(f2_2) == 4 and all("optimizer=inna optimizer.lr=0.01 optimizer.alpha=" in c for c in f2_2)
    f2_3_inna = next(c for c in train_calls if "f2_3/f2_cifar10" in c and "optimizer=inna" in c)
    # loss - 2 = alpha - beta at lr 1e-2: (0.1, 0.1) -> 0, (0.5, 0.1) -> 0.4, (0.5, 0.5) -> 0, (0.5, 1) -> -0.5
    assert "optimizer.lr=0.01 optimizer.alpha=0.5 optimizer.beta=1.0" in f2_3_inna
    assert "optimizer.alpha=0.5 optimizer.beta=1.0" in train_calls[-1]
    reports = [c for c in calls if c.startswith("optrepro-report")]
    assert len(reports) == 3 and "optimizer=adam" in reports[-1] and "*" not in reports[-1]
