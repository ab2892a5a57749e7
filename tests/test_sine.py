"""The sine task of HT eq. 19: deterministic per seed, source and target on the same inputs, stated noise."""

import torch

from optrepro.data.sine import MemberBatches, SineDataModule, epoch_permutation, sine_task


def test_same_seed_same_data_other_seed_other_data():
    a, _ = sine_task(3, 137.0, 1.0, 500, 0.8, 0.1)
    b, _ = sine_task(3, 137.0, 1.0, 500, 0.8, 0.1)
    c, _ = sine_task(4, 137.0, 1.0, 500, 0.8, 0.1)
    assert torch.equal(a.x, b.x) and torch.equal(a.y_target, b.y_target)
    assert not torch.equal(a.x, c.x)


def test_inputs_uniform_targets_are_sines_plus_noise_of_stated_std():
    train, test = sine_task(0, 137.0, 1.0, 20_000, 0.8, 0.1)
    assert train.x.shape == (16_000, 1) and test.x.shape == (4_000, 1)
    assert train.x.min() >= 0 and train.x.max() <= 1
    assert abs(train.x.mean().item() - 0.5) < 0.01  # U(0,1): mean 1/2, std of the mean 0.0023
    noise_t = train.y_target - torch.sin(137.0 * train.x)
    noise_s = train.y_source - torch.sin(train.x)
    for noise in (noise_t, noise_s):
        assert abs(noise.std().item() - 0.1) < 0.003  # std of a std estimate: 0.1 / sqrt(2 n) = 0.0006
        assert abs(noise.mean().item()) < 0.003


def test_members_see_their_own_data_in_their_own_order():
    dm = SineDataModule(seeds=[5, 9], omega=137.0, n_samples=100, batch_size=16)
    dm.setup()
    single = SineDataModule(seeds=[9], omega=137.0, n_samples=100, batch_size=16)
    single.setup()
    both = list(MemberBatches(dm.train, dm.seeds, 16, epoch=2, limit=None))
    alone = list(MemberBatches(single.train, single.seeds, 16, epoch=2, limit=None))
    assert len(both) == len(alone) == 5  # 80 training samples in batches of 16
    for (x2, ys2, yt2), (x1, ys1, yt1) in zip(both, alone):
        assert torch.equal(x2[1], x1[0]) and torch.equal(yt2[1], yt1[0]) and torch.equal(ys2[1], ys1[0])
    # an epoch visits every sample once; the next epoch in another order
    seen = torch.cat([b[0][0] for b in both]).squeeze()
    assert torch.equal(seen.sort().values, dm.train.x[0].squeeze().sort().values)
    assert not torch.equal(epoch_permutation(5, 2, 80), epoch_permutation(5, 3, 80))
