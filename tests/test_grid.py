"""TH grid search, stage one -> stage two (optrepro.grid), on fabricated run directories in the real format."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from optrepro.config import compose
from optrepro.grid import GridIncomplete, main, read_sweep, runs_table, select

LRS = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]


def fake_run(root: Path, overrides: list[str], losses: list[float], status: str = "completed", seed: int = 0) -> Path:
    """What optrepro-train -m leaves per job: .hydra/overrides.yaml, metrics.csv (one row per epoch), summary.json."""
    run = root / ",".join(o for o in overrides if not o.startswith(("experiment", "sweep"))) / f"seed={seed}"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in [*overrides, f"seed={seed}"]))
    lines = ["epoch,step,grad_evals,lr,train/loss,train/acc,test/loss,test/acc"]
    lines += [f"{e},{(e + 1) * 10},{(e + 1) * 10},0.1,{v},0.5,{v},0.5" for e, v in enumerate(losses)]
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    final = {"epoch": len(losses) - 1, "train/loss": losses[-1]}
    summary = {"kind": "run", "status": status, "seed": seed, "experiment": "th/f4_4a", "final": final, "config": {}}
    (run / "summary.json").write_text(json.dumps({k: (str(v) if v != v else v) for k, v in summary.items()}))
    return run


def sgd_runs(root: Path, final: dict[float, float], **kw) -> None:
    for lr, loss in final.items():
        # the first epoch's loss is lower at lr 1e-4: only the last row (end of the grid budget) may count
        fake_run(root, ["experiment=th/f4_4a", "sweep=th/grid_sgd", "optimizer=sgd", f"optimizer.lr={lr}"],
                 [0.01 if lr == 1e-4 else 5.0, loss], **kw)  # fmt: skip


def test_sweep_file_is_read_with_hydra_grammar():
    adam = read_sweep("th/grid_adam")
    assert adam.fixed == {"optimizer": "adam", "schedule": "constant"}
    assert adam.grid["optimizer.lr"] == LRS
    assert [b[0] for b in adam.grid["optimizer.betas"]] == [0.1, 0.5, 0.9, 0.99]
    assert read_sweep("th/grid_step_tuned_sgd").grid["optimizer.nu"] == [1.0, 2.0, 5.0]


def test_argmin_at_the_end_of_stage_one_and_overrides(tmp_path, capsys):
    sgd_runs(tmp_path, {1e-4: 2.0, 1e-3: 1.5, 1e-2: 0.7, 1e-1: 0.9, 1.0: 2.3})
    # another optimizer's runs in the same directory must not be read as SGD's
    fake_run(tmp_path, ["optimizer=inna", "optimizer.lr=0.001"], [0.1, 0.01])
    assert main([str(tmp_path), "--sweep", "th/grid_sgd", "--table", str(tmp_path / "t.csv")]) == 0
    assert capsys.readouterr().out.split() == ["optimizer=sgd", "optimizer.lr=0.01"]
    assert (tmp_path / "t.csv").read_text().count("\n") == 1 + len(LRS)


def test_ties_go_to_the_first_point_in_the_sweep_order(tmp_path):
    sgd_runs(tmp_path, {1e-4: 2.0, 1e-3: 0.5, 1e-2: 0.5, 1e-1: 0.9, 1.0: 2.3})
    sweep = read_sweep("th/grid_sgd")
    s = select(runs_table(tmp_path, list(sweep.grid), sweep.fixed), sweep.grid)
    assert s.best == {"optimizer.lr": 1e-3} and s.loss == 0.5


def test_diverged_runs_are_excluded(tmp_path):
    # lr 1 "diverged" by status, lr 0.1 wrote a nan loss though its status says completed: neither may win
    sgd_runs(tmp_path, {1e-4: 2.0, 1e-3: 1.5, 1e-2: 0.7})
    sgd_runs(tmp_path, {1.0: 0.001}, status="diverged")
    sgd_runs(tmp_path, {1e-1: math.nan})
    sweep = read_sweep("th/grid_sgd")
    s = select(runs_table(tmp_path, list(sweep.grid), sweep.fixed), sweep.grid)
    assert s.best == {"optimizer.lr": 1e-2}
    assert s.diverged == [{"optimizer.lr": 1e-1}, {"optimizer.lr": 1.0}] and s.missing == []


def test_missing_runs_are_reported_by_name(tmp_path, capsys):
    sgd_runs(tmp_path, {1e-4: 2.0, 1e-3: 1.5, 1e-2: 0.7})
    sgd_runs(tmp_path, {1e-1: 0.1}, status="failed")  # a failed run counts as not run
    assert main([str(tmp_path), "--sweep", "th/grid_sgd"]) == 2
    err = capsys.readouterr().err
    assert "2 of 5 grid points have no finished run" in err
    assert "optimizer.lr=0.1;" in err and "optimizer.lr=1.0" in err
    assert main([str(tmp_path), "--sweep", "th/grid_sgd", "--allow-missing"]) == 0
    assert capsys.readouterr().out.split() == ["optimizer=sgd", "optimizer.lr=0.01"]
    with pytest.raises(GridIncomplete, match="no finished run"):
        sweep = read_sweep("th/grid_sgd")
        select(runs_table(tmp_path / "nothing", list(sweep.grid), sweep.fixed), sweep.grid)


def test_two_dimensional_grid_and_stage_two_composes(tmp_path, capsys):
    """Adam: lr x beta1 (20 points); the printed overrides compose into stage two's config as they are."""
    for lr in LRS:
        for b1 in (0.1, 0.5, 0.9, 0.99):
            loss = abs(math.log10(lr) + 3) + abs(b1 - 0.5)  # lowest at lr 1e-3, beta1 0.5
            over = ["optimizer=adam", "schedule=constant", f"optimizer.betas=[{b1},0.999]", f"optimizer.lr={lr}"]
            fake_run(tmp_path, over, [9.0, loss])
    assert main([str(tmp_path), "--sweep", "th/grid_adam"]) == 0
    chosen = capsys.readouterr().out.split()
    assert chosen == ["optimizer=adam", "schedule=constant", "optimizer.betas=[0.5,0.999]", "optimizer.lr=0.001"]
    cfg = compose(["experiment=th/f4_4a", *chosen])
    assert cfg.optimizer.betas == [0.5, 0.999] and cfg.optimizer.lr == 1e-3 and cfg.trainer.epochs == 500


def test_keys_mode_ranks_the_mean_over_seeds(tmp_path, capsys):
    """TH Figure 2.3 keeps the (alpha, beta) of Figure 2.2 with the smallest average train loss."""
    for seed, losses in enumerate([(0.30, 0.10, 0.50), (0.10, 0.25, 0.50)]):
        for (a, b), loss in zip([(0.1, 0.1), (0.5, 0.1), (0.5, 1.0)], losses):
            fake_run(tmp_path, ["optimizer=inna", f"optimizer.alpha={a}", f"optimizer.beta={b}"], [loss], seed=seed)
    # means: (0.1, 0.1): 0.2, (0.5, 0.1): 0.175, (0.5, 1): 0.5; the per-seed minimum (0.1) would pick differently
    # the three pairs run are the points (not the 2 x 2 product of the values: nothing is missing)
    assert main([str(tmp_path), "--keys", "optimizer.alpha", "optimizer.beta"]) == 0
    assert capsys.readouterr().out.split() == ["optimizer.alpha=0.5", "optimizer.beta=0.1"]


def test_grid_epochs_is_checked_and_stage_one_uses_it():
    from optrepro.config import ConfigError, apply_profile, validate

    with pytest.raises(ConfigError, match="grid_epochs=0"):
        validate(compose(["experiment=th/f4_4a", "grid_epochs=0"]))
    # Table 4.1: the grid search of problem (c) lasts 30 epochs of 300; profile=quick keeps a tenth of it
    assert compose(["experiment=th/f4_4c", "sweep=th/grid_sgd"]).trainer.epochs == 30
    assert apply_profile(compose(["experiment=th/f4_4c", "sweep=th/grid_sgd", "profile=quick"])).trainer.epochs == 3
