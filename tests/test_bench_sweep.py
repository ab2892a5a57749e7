"""scripts/bench_sweep.py's hand-written sweep (``sine_baseline.HandWrittenSweep``) trains what the framework's jobs
train: HT Algorithm 1's lambda by epoch, Adam with each member's own step count, and every member's rows."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from sine_baseline import HandWrittenSweep, MemberAdam, method_lambda, staircase_lambda  # noqa: E402

from optrepro.methods import Staircase  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_hand_written_staircase_is_ht_algorithm_1_and_optrepros_staircase():
    # gamma 3, k 2, by hand: two epochs at 1/3, two at 2/3, then 1 for good
    by_hand = [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1.0, 1.0, 1.0, 1.0]
    assert [staircase_lambda(e, 3, 2) for e in range(8)] == pytest.approx(by_hand)
    for gamma, k in [(3, 2), (10, 2), (10, 20), (1, 5)]:
        assert [staircase_lambda(e, gamma, k) for e in range(gamma * k + 3)] == pytest.approx(
            [Staircase(gamma, k)(e) for e in range(gamma * k + 3)]
        )
    assert [method_lambda(m, 0, 3, 2) for m in ("random_init", "warm_start", "data_homotopy")] == [1.0, 1.0, 1 / 3]


def test_member_adam_is_torch_adam_for_each_member_with_its_own_step_count():
    torch.manual_seed(0)
    shapes = [(3, 4, 2), (3, 1, 2)]
    source = MemberAdam([torch.randn(s, requires_grad=True) for s in [(2, *s[1:]) for s in shapes]])
    for _ in range(4):  # the source's members have taken 4 steps
        for p in source.params:
            p.grad = torch.randn_like(p)
        source.step()
    mine = MemberAdam([torch.randn(s, requires_grad=True) for s in shapes])
    mine.take(source, torch.tensor([1, 2]), torch.tensor([0, 1]))  # members 1, 2 continue the source's 0, 1
    assert mine.steps.tolist() == [0, 4, 4]
    # each member alone under torch.optim.Adam: member 0 fresh, members 1, 2 with the source's moments and steps
    alone = []
    for i in range(3):
        params = [p.detach()[i].clone().requires_grad_() for p in mine.params]
        adam = torch.optim.Adam(params, lr=1e-3)
        if i:
            for p, m, v in zip(params, mine.exp_avg, mine.exp_avg_sq):
                adam.state[p] = {"step": torch.tensor(4.0), "exp_avg": m[i].clone(), "exp_avg_sq": v[i].clone()}
        alone.append((params, adam))
    for _ in range(3):
        grads = [torch.randn_like(p) for p in mine.params]
        for p, g in zip(mine.params, grads):
            p.grad = g.clone()
        mine.step()
        for i, (params, adam) in enumerate(alone):
            for p, g in zip(params, grads):
                p.grad = g[i].clone()
            adam.step()
    for i, (params, _) in enumerate(alone):
        for stacked, p in zip(mine.params, params):
            torch.testing.assert_close(stacked.detach()[i], p.detach())


def test_every_member_of_every_job_gets_its_rows(tmp_path):
    sweep = HandWrittenSweep(
        ["random_init", "warm_start", "data_homotopy"], [10.0, 137.0], 2, source_epochs=2, target_epochs=3,
        gamma=2, k=1, n_samples=100, hidden=8, depth=2,
    )  # fmt: skip
    assert sweep.run() == 3 * 2 * 2 * 3 + 2 * 2 * 2 * 2  # target epochs of all 12 members, source epochs of 8
    sweep.write_csv(tmp_path / "rows.csv")
    with open(tmp_path / "rows.csv") as f:
        rows = list(csv.DictReader(f))
    homotopy = [r for r in rows if r["method"] == "data_homotopy" and r["omega"] == "137.0" and r["seed"] == "1"]
    assert [(int(r["epoch"]), float(r["homotopy/lambda"])) for r in homotopy] == [
        (-2, 0.0), (-1, 0.0), (0, 0.5), (1, 1.0), (2, 1.0),
    ]  # fmt: skip
    random_init = [r for r in rows if r["method"] == "random_init"]
    assert {int(r["epoch"]) for r in random_init} == {0, 1, 2}

    # warm start and the homotopy share their seed's source pre-training: the same rows before epoch 0
    def before(method: str) -> list[tuple]:
        return [(r["omega"], r["seed"], r["train/loss"]) for r in rows if r["method"] == method and int(r["epoch"]) < 0]

    assert before("warm_start") == before("data_homotopy")
    assert all(torch.isfinite(torch.tensor(float(r[k]))) for r in rows for k in ("train/loss", "test/loss"))
