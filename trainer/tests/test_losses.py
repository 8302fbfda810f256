import math
import random

import pytest
import torch

from cafe_models.losses import (cafe_loss, channel_drop_mask, diversity_loss, dropped_per_group, group_max,
                                group_size, separation_loss)

# D = 14: 7 groups of cnum = 2 channels
F_ROW = [1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 5.0, 1.0, 2.0, 2.0, 0.0, 4.0, 1.0, 1.0]
GROUP_MAX = [2.0, 3.0, 0.0, 5.0, 2.0, 4.0, 1.0]


def test_group_max_pools_consecutive_channel_groups():
    f = torch.tensor([F_ROW])
    assert group_max(f).tolist() == [GROUP_MAX]


def test_group_max_ignores_leftover_channels():
    # D = 15: cnum = 2 still, channel 14 never reaches the pooled logits (channel 511 in the reference)
    f = torch.tensor([F_ROW + [100.0]])
    assert group_size(15) == 2
    assert group_max(f).tolist() == [GROUP_MAX]


def test_diversity_loss_worked_example():
    # 1 - mean(group maxima) / cnum = 1 - (17/7) / 2 = -3/14
    f = torch.tensor([F_ROW, [0.0] * 14])  # second row: all maxima 0
    # batch mean over both rows: 1 - (17/14)/2 = 1 - 17/28
    assert diversity_loss(f[:1]).item() == pytest.approx(-3 / 14)
    assert diversity_loss(f).item() == pytest.approx(1 - 17 / 28)


def test_separation_loss_worked_example_with_dropped_channels():
    f = torch.tensor([F_ROW])
    y = torch.tensor([3])
    keep = torch.ones(14)
    expected = math.log(sum(math.exp(z) for z in GROUP_MAX)) - 5.0
    assert separation_loss(f, y, keep).item() == pytest.approx(expected, rel=1e-6)
    # drop channel 6 (the 5.0 of group 3): group 3's max becomes 1.0
    drop = keep.clone()
    drop[6] = 0
    dropped = [2.0, 3.0, 0.0, 1.0, 2.0, 4.0, 1.0]
    expected = math.log(sum(math.exp(z) for z in dropped)) - 1.0
    assert separation_loss(f, y, drop).item() == pytest.approx(expected, rel=1e-6)


def test_cafe_loss_weights_one_one_and_a_half_five():
    torch.manual_seed(0)
    f = torch.rand(4, 14)
    logits = torch.randn(4, 7)
    y = torch.tensor([0, 3, 6, 2])
    mask = torch.ones(14)
    total, parts = cafe_loss(logits, f, y, mask)
    assert total.item() == pytest.approx(parts["ce"] + 1.5 * parts["sep"] + 5 * parts["div"], rel=1e-6)
    ce = torch.nn.functional.cross_entropy(logits, y).item()
    assert parts["ce"] == pytest.approx(ce)


def test_soft_targets_are_accepted():
    logits = torch.tensor([[2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    soft = torch.tensor([[0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5]])
    z = math.log(math.exp(2) + 6)
    assert separation_loss(torch.tensor([F_ROW]), soft, torch.ones(14)).item() > 0
    total, parts = cafe_loss(logits, torch.tensor([F_ROW]), soft, torch.ones(14))
    assert parts["ce"] == pytest.approx(0.5 * (z - 2) + 0.5 * z, rel=1e-6)


@pytest.mark.parametrize("dim,cnum,n_drop", [(512, 73, 10), (1024, 146, 20), (14, 2, 0)])
def test_drop_mask_counts_per_group(dim, cnum, n_drop):
    assert group_size(dim) == cnum and dropped_per_group(cnum) == n_drop
    mask = channel_drop_mask(dim, random.Random(1))
    assert mask.shape == (dim,)
    for g in range(7):
        end = (g + 1) * cnum if g < 6 else dim  # the last drop group holds the leftover channels
        group = mask[g * cnum:end]
        assert int((group == 0).sum()) == n_drop, g
    # the reference's neutral group: 74 channels, 64 kept
    if dim == 512:
        assert len(mask[6 * 73:]) == 74 and int(mask[6 * 73:].sum()) == 64


def test_drop_mask_is_one_vector_shared_by_the_batch_and_changes_between_draws():
    rng = random.Random(3407)
    a, b = channel_drop_mask(1024, rng), channel_drop_mask(1024, rng)
    assert not torch.equal(a, b)
    f = torch.ones(5, 1024)
    dropped = f * a
    assert all(torch.equal(dropped[i], a) for i in range(5))  # same channels dropped for every sample
    # same seed, same mask: resumed runs redraw identical masks
    assert torch.equal(channel_drop_mask(1024, random.Random(7)), channel_drop_mask(1024, random.Random(7)))
