"""An ensemble member is the same run as that seed alone (docs/architecture.md "Many seeds at once")."""

import numpy as np
import pytest
import torch
from conftest import read_metrics
from torch import nn

from optrepro.ensemble import SingleMember, VmappedEnsemble, build_members
from optrepro.ensemble.members import linear_plan
from optrepro.models import MLP
from optrepro.train import run


def test_members_start_from_their_single_run_initialization():
    ens = build_members(lambda: MLP(1, 1, 8, 2), [3, 4])
    alone = build_members(lambda: MLP(1, 1, 8, 2), [4])
    assert isinstance(ens, VmappedEnsemble) and isinstance(alone, SingleMember)
    for k, v in alone.member_state_dict(0).items():
        assert torch.equal(ens.member_state_dict(1)[k], v)


def test_two_members_equal_two_single_runs(make_cfg, tmp_path):
    overrides = ("seed=7", "trainer.epochs=4", "homotopy.source_epochs=2")
    run(make_cfg(*overrides, "ensemble.size=2", run_dir=tmp_path / "ens"))
    run(make_cfg(*overrides, run_dir=tmp_path / "s7"))
    run(make_cfg(*overrides[1:], "seed=8", run_dir=tmp_path / "s8"))
    for seed in (7, 8):
        member, single = read_metrics(tmp_path / "ens" / f"seed={seed}"), read_metrics(tmp_path / f"s{seed}")
        assert len(member) == len(single) == 6
        for column in ("train/objective", "train/loss", "test/loss"):
            np.testing.assert_allclose(member[column], single[column], rtol=1e-4, atol=1e-6)
    # the two seeds are different runs, so the test would notice members swapped or mixed
    a, b = read_metrics(tmp_path / "s7"), read_metrics(tmp_path / "s8")
    assert np.abs(a["train/loss"].values - b["train/loss"].values).max() > 1e-3


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_the_linear_stack_path_is_vmap_bit_for_bit(activation):
    """A stack of Linear layers skips vmap (ensemble.members.linear_plan): the same outputs and gradients, to the
    bit, as vmap over functional_call."""
    torch.manual_seed(0)
    ens = build_members(lambda: MLP(2, 3, 32, 3, activation=activation), [0, 1, 2])
    assert ens._plan is not None
    x = torch.randn(3, 17, 2)
    results = []
    for plan in (ens._plan, None):
        ens._plan = plan
        ens.zero_grad(set_to_none=True)
        out = ens(x)
        out.pow(2).mean((1, 2)).sum().backward()
        results.append((out.detach(), [p.grad for p in ens.parameters()]))
    (out, grads), (vmapped, vmapped_grads) = results
    assert torch.equal(out, vmapped)
    assert all(torch.equal(a, b) for a, b in zip(grads, vmapped_grads))


def test_models_other_than_a_linear_stack_keep_vmap():
    class Scaled(nn.Sequential):
        def forward(self, x):
            return 2 * super().forward(x)

    assert linear_plan(MLP(1, 1, 4, 2)) is not None
    assert linear_plan(Scaled(nn.Linear(1, 1))) is None  # its own forward
    assert linear_plan(nn.Sequential(nn.Linear(1, 4), nn.BatchNorm1d(4))) is None  # a layer that is not elementwise
    assert linear_plan(nn.Linear(1, 1)) is None
