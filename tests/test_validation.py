"""Bad overrides stop before training with a message naming the key, the value and what is allowed."""

import subprocess
import sys

import pytest

from optrepro.config import ConfigError, apply_profile, validate


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("optimizer.lr=-1", "optimizer.lr=-1 is not allowed: optimizer.lr must be finite and > 0"),
        ("optimizer.lr=0", "optimizer.lr=0 is not allowed"),
        ("optimizer.lr=inf", "optimizer.lr=inf is not allowed: optimizer.lr must be finite and > 0"),
        (
            "optimizer=sgd optimizer.momentum=1.5",
            "optimizer.momentum=1.5 is not allowed: optimizer.momentum must be in",
        ),
        ("optimizer.betas=[0.9,1.2]", "is not allowed: optimizer.betas must be two values in"),
        ("optimizer.weight_decay=-1", "optimizer.weight_decay=-1 is not allowed"),
        ("trainer.epochs=0", "trainer.epochs=0 is not allowed: trainer.epochs must be an integer >= 1"),
        ("homotopy.gamma=0", "homotopy.gamma=0 is not allowed: homotopy.gamma must be an integer >= 1"),
        ("task.omega=-3", "task.omega=-3 is not allowed: task.omega must be > 0"),
        ("method=random_init method.schedule.value=1.5", "method.schedule.value=1.5 is not allowed"),
        (
            "homotopy.k=5",
            "homotopy.gamma * homotopy.k = 2 * 5 = 10 epochs of homotopy exceed trainer.epochs=3",
        ),
    ],
)
def test_bad_value_is_named(make_cfg, override, expected):
    with pytest.raises(ConfigError, match=expected.replace("*", r"\*").replace(".", r"\.")):
        validate(apply_profile(make_cfg(*override.split())))


def test_good_values_pass(make_cfg):
    validate(apply_profile(make_cfg("method=random_init", "method.schedule.value=0.5")))


def _train(cwd, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "optrepro.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=cwd)


def test_command_line_reports_bad_value_and_exits_2(tmp_path):
    result = _train(tmp_path, "experiment=ht/sine_f1", "optimizer.lr=-0.1")
    assert result.returncode == 2
    assert "optimizer.lr=-0.1 is not allowed: optimizer.lr must be finite and > 0" in result.stderr
    assert not list(tmp_path.rglob("summary.json"))  # nothing ran


def test_command_line_lists_options_of_an_unknown_group_choice(tmp_path):
    result = _train(tmp_path, "method=no_such_method")
    assert result.returncode != 0
    assert "no_such_method" in result.stderr
    for option in ("random_init", "warm_start", "data_homotopy"):
        assert option in result.stderr
