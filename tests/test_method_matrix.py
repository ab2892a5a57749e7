"""Every method on every kind of task, through the one loop: it trains with its effect visible in the records, or it
is refused before training with a message that names the method, the task and why (no silent no-op)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny

from optrepro.config import ConfigError, compose
from optrepro.train import run

pytestmark = pytest.mark.usefixtures("one_thread")

#: one preset per kind of task, at a scale of seconds (generated data where the task reads a dataset)
KINDS = {
    "regression": tiny(),  # the sine task of conftest: 200 samples, gamma 2, k 1, one source epoch, 3 epochs
    "trajectory": ["experiment=gc/lotka_volterra_f6", "profile=smoke"],
    "classification": ["experiment=gc/mnist_mlp_f5", "profile=smoke", "model.layers=4"],
    "paired classification": ["experiment=ht/mnist_fmnist_f3a", "profile=smoke", "homotopy.source_epochs=1"],
    "autoencoding": ["experiment=th/f4_4d", "profile=smoke"],
}
METHODS = ["plain", "random_init", "warm_start", "data_homotopy", "gaussian_continuation", "hta", "hta_authors"]
#: (method, kind) pairs that must be refused, and the reason the message gives
REFUSED = {
    (m, k): "it trains on a source task"
    for m in ("warm_start", "data_homotopy")
    for k in ("trajectory", "classification", "autoencoding")
}


def train(kind: str, run_dir: Path, *overrides: str) -> pd.DataFrame:
    metrics = run(compose([*KINDS[kind], *overrides, f"paths.run_dir={run_dir}"]))
    assert metrics["runs/completed"] == 1, metrics
    return pd.read_csv(run_dir / "metrics.csv")


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_or_is_refused_before_training(kind, method, tmp_path):
    if (method, kind) in REFUSED:
        with pytest.raises(ConfigError, match=rf"method={method} cannot train task=\w+: {REFUSED[method, kind]}"):
            # a staircase that fits the short budget, so that the method's own check is the one that speaks
            fits = ["homotopy.gamma=1", "homotopy.k=1"]
            run(compose([*KINDS[kind], f"method={method}", *fits, f"paths.run_dir={tmp_path}"]))
        assert not (tmp_path / "summary.json").exists()  # nothing ran, nothing was written
        return
    rows = train(kind, tmp_path, f"method={method}")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["method"] == method and summary["config"]["method"]["name"] == method
    assert rows["train/loss"].notna().all()
    assert (rows.epoch >= 0).sum() == summary["config"]["trainer"]["epochs"]  # the target budget, source apart
    if method.startswith("hta"):  # two coupled copies: eta's own loss, and a coupling term of copies that differ
        assert {"homotopy/L", "train/f_theta", "train/f_eta", "homotopy/coupling"} <= set(rows.columns)
        assert (rows["homotopy/coupling"] > 0).all()
        assert rows["homotopy/L"].iloc[0] == pytest.approx(0.01)  # HTA 4.2's first L
    if method == "gaussian_continuation":
        assert "homotopy/lambda_end" in rows.columns


GC_FIXED = ["method=gaussian_continuation", "method.schedule=constant", "method.warmup_epochs=0"]


@pytest.mark.parametrize("kind", ["regression", "trajectory", "classification", "autoencoding"])
def test_gaussian_continuation_moves_the_updates_and_tends_to_plain_training_as_lambda_goes_to_zero(kind, tmp_path):
    """GC eq. 7 at lambda > 0 evaluates the loss at perturbed parameters: other updates than plain training; at
    lambda = e^-80 the perturbation sqrt(lambda) eps ~ 4e-18 is below float32 resolution of the weights, so the
    run is plain training step for step."""
    plain = train(kind, tmp_path / "plain", "method=plain")
    tiny = train(kind, tmp_path / "tiny", *GC_FIXED, "method.log_lambda0=-80")
    noisy = train(kind, tmp_path / "noisy", *GC_FIXED, "method.log_lambda0=-8")
    for column in ("train/loss", "test/loss"):
        assert tiny[column].tolist() == pytest.approx(plain[column].tolist(), rel=1e-5), column
    # the minibatch losses are scored at the perturbed parameters from the first step on
    scored = "train/objective" if "train/objective" in plain.columns else "train/loss"  # train_metrics full / minibatch
    assert all(abs(a - b) > 1e-6 * abs(b) for a, b in zip(noisy[scored], plain[scored]))
    assert noisy["test/loss"].tolist() != pytest.approx(plain["test/loss"].tolist(), rel=1e-7)  # and theta moved
    assert noisy["homotopy/lambda"].tolist() == pytest.approx([math.exp(-8)] * len(noisy))


def test_the_data_homotopy_trains_on_targets_that_move_with_lambda(tmp_path):
    """HT Algorithm 1 on the sine task: lambda climbs the staircase 1/2, 1 (gamma = 2, k = 1); in the epoch at
    lambda = 1/2 the objective is scored against (y_source + y_target) / 2, not the warm start's y_target, so the two
    runs, equal through the source pre-training, part there."""
    homotopy = train("regression", tmp_path / "homotopy", "method=data_homotopy").set_index("epoch")
    warm = train("regression", tmp_path / "warm", "method=warm_start").set_index("epoch")
    assert homotopy["homotopy/lambda"].tolist() == [0.0, 0.5, 1.0, 1.0]  # epoch -1: the source pre-training
    assert warm["homotopy/lambda"].tolist() == [0.0, 1.0, 1.0, 1.0]
    assert homotopy.loc[-1].tolist() == warm.loc[-1].tolist()
    assert homotopy.loc[0, "train/objective"] != pytest.approx(warm.loc[0, "train/objective"], rel=1e-3)


@pytest.mark.parametrize("method", ["gaussian_continuation", "hta"])
def test_single_member_methods_refuse_an_ensemble_by_name(method, tmp_path):
    cfg = compose([*KINDS["regression"], f"method={method}", "ensemble.size=2", f"paths.run_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=rf"method={method} cannot train task=sine with ensemble.size=2: .*one model"):
        run(cfg)
    assert not (tmp_path / "summary.json").exists()


def test_hta_on_the_conv_part_of_a_network_without_convolutions_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="method=hta_conv.*selects no parameter of MLP"):
        run(compose([*KINDS["regression"], "method=hta_conv", f"paths.run_dir={tmp_path}"]))
