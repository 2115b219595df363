"""The SMPL branch's share of a training image's positive proposals (model.positives):
against a plain reference on random proposals, and in the network's training pass."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
import torch

from model.losses import select_per_person
from model.positives import balanced_positives
from model.rcnn import ModelConfig, build_model
from pipelines.training import PhaseParams
from stages.common import typed
from stages.train import build_network
from tests.training_setup import tiny_training_params


def random_positives(generator: torch.Generator, people: int, count: int):
    """``count`` proposals on ``people`` people (each at least one), scores with ties."""
    matched = torch.cat([torch.arange(people),
                         torch.randint(people, (count - people,), generator=generator)])
    matched = matched[torch.randperm(count, generator=generator)]
    scores = torch.randint(0, 6, (count,), generator=generator).float() / 5  # ties on purpose
    return matched, scores


def reference_counts(matched: torch.Tensor, cap: int) -> tuple[int, int]:
    """(level, people at level + 1): the per-person counts rank-by-rank taking ends with.
    Everyone gets min(n_p, level), and that many people with more get one extra."""
    sizes = sorted(Counter(matched.tolist()).values())
    level, left = 0, cap
    while left >= sum(1 for size in sizes if size > level) > 0:
        left -= sum(1 for size in sizes if size > level)
        level += 1
    return level, left


@pytest.mark.parametrize("trial", range(40))
def test_cap_spreads_over_people_and_keeps_each_best(trial):
    generator = torch.Generator().manual_seed(trial)
    people = int(torch.randint(1, 9, (1,), generator=generator))
    count = people + int(torch.randint(0, 30, (1,), generator=generator))
    cap = int(torch.randint(1, 20, (1,), generator=generator))
    matched, scores = random_positives(generator, people, count)
    torch.manual_seed(trial)
    kept = balanced_positives(matched, scores, cap)

    assert len(kept) == min(count, cap)
    assert torch.equal(kept, kept.unique())  # ascending, no repeats
    kept_per_person = Counter(matched[kept].tolist())
    level, extra = reference_counts(matched, cap) if count > cap else (count, 0)
    sizes = Counter(matched.tolist())
    above = [p for p in sizes if kept_per_person[p] > min(sizes[p], level)]
    assert all(kept_per_person[p] >= min(sizes[p], level) for p in sizes)
    assert len(above) == extra and all(kept_per_person[p] == level + 1 for p in above)
    # every person who keeps a proposal keeps the one the scene losses read
    best = select_per_person(matched, scores, people)
    for person, proposal in enumerate(best.tolist()):
        assert (proposal in kept.tolist()) == (kept_per_person[person] > 0)


def test_no_cap_or_few_positives_keep_all():
    matched, scores = torch.tensor([0, 1, 0, 2]), torch.rand(4)
    state = torch.get_rng_state()
    assert torch.equal(balanced_positives(matched, scores, 0), torch.arange(4))
    assert torch.equal(balanced_positives(matched, scores, 4), torch.arange(4))
    assert torch.equal(torch.get_rng_state(), state)  # and draws nothing (cap 0 repeats runs)
    assert len(balanced_positives(matched[:0], scores[:0], 8)) == 0


def test_the_rest_are_random_and_seeded():
    matched, scores = torch.zeros(12, dtype=torch.long), torch.linspace(0, 1, 12)
    draws = set()
    for seed in range(20):
        torch.manual_seed(seed)
        first = balanced_positives(matched, scores, 3)
        torch.manual_seed(seed)
        assert torch.equal(first, balanced_positives(matched, scores, 3))
        assert 11 in first.tolist()  # the best
        draws.add(tuple(first.tolist()))
    assert len(draws) > 10


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="same 1-D shape"):
        balanced_positives(torch.zeros(3, dtype=torch.long), torch.zeros(4), 2)
    with pytest.raises(ValueError, match="cap must be >= 0"):
        balanced_positives(torch.zeros(3, dtype=torch.long), torch.zeros(3), -1)


def test_network_feeds_the_capped_positives_to_the_smpl_branch(anny_body):
    config = typed(ModelConfig, tiny_training_params(), "model")
    people = torch.tensor([[10.0, 5, 40, 70], [50, 10, 90, 75], [30, 8, 70, 72]])
    targets = [{"boxes": people, "labels": torch.ones(3, dtype=torch.long)}] * 2
    generator = torch.Generator().manual_seed(0)  # proposals: 6 jittered boxes per person
    proposals = [(people.repeat(6, 1) + torch.randn(18, 4, generator=generator)) for _ in range(2)]
    images, outputs = torch.rand(2, 3, 80, 128, generator=generator), {}
    for cap in (0, 4):
        network = build_model(dataclasses.replace(config, smpl_rois_per_image=cap),
                              anny_body, 0).train()
        features = network.backbone(images)
        torch.manual_seed(1)  # the same box sampling for both
        _, branch = network.roi_heads(features, proposals, [(80, 128)] * 2, targets)
        outputs[cap] = branch
    full, capped = outputs[0], outputs[4]
    assert len(capped.rotmats) == sum(len(b) for b in capped.boxes) == 8
    for image in range(2):
        assert len(full.boxes[image]) > 4 and len(capped.boxes[image]) == 4
        rows = [tuple(b.tolist()) for b in full.boxes[image]]
        kept = [rows.index(tuple(b.tolist())) for b in capped.boxes[image]]  # all full's
        assert sorted(Counter(full.matched[image][kept].tolist()).values()) == [1, 1, 2]
        best = select_per_person(full.matched[image], full.scores[image], 3)
        assert set(best.tolist()) <= set(kept)  # each person's best is among them


def test_a_phase_cap_replaces_the_model_cap(anny_body):
    params = tiny_training_params()
    config = dataclasses.replace(typed(ModelConfig, params, "model"), smpl_rois_per_image=8)
    phase = typed(PhaseParams, params, "train.pretrain")
    for cap, expected in ((2, 2), (None, 8)):
        network = build_network(config, dataclasses.replace(phase, smpl_rois_per_image=cap),
                                anny_body, 0)
        assert network.roi_heads.smpl_rois_per_image == expected
    # the cap is a sampling choice: the weights are those of the model alone
    capped = build_network(config, dataclasses.replace(phase, smpl_rois_per_image=2),
                           anny_body, 0).state_dict()
    for name, value in build_model(config, anny_body, 0).state_dict().items():
        assert torch.equal(capped[name], value), name
