"""Which positive proposals of a training image feed the SMPL branch.

The box sampler's positives (IoU >= 0.5 with a person) come in clusters: a trained
detector proposes a dozen near-identical boxes around each person. The official code
runs the SMPL branch on all of them (up to 128 per image). On a CPU the branch's four
3x3 convolutions at 14x14 are a large part of a training step, and the extra boxes of a
person add little: the same person, posed once by the criterion, seen through slightly
shifted crops. :func:`balanced_positives` keeps at most ``cap`` of them, spread over
the people, so that nobody is left out while someone else has two, and every person
keeps the proposal the scene losses read (their highest-scoring one, see
:func:`model.losses.select_per_person`).
"""

from __future__ import annotations

import torch

__all__ = ["balanced_positives"]


def balanced_positives(matched: torch.Tensor, scores: torch.Tensor, cap: int) -> torch.Tensor:
    """Indices of at most ``cap`` of one image's positive proposals, spread over the people.

    1. Each person's proposals are ranked: their highest-scoring one first, the others
       in random order (torch's global generator, so a seeded run repeats).
    2. They are taken rank by rank (every person's first, then every person's second,
       ...), the people in random order within a rank, until ``cap`` are taken.

    Args:
        matched: ``[N]`` the person each positive proposal is assigned to.
        scores: ``[N]`` their person scores.
        cap: the most proposals to keep; 0 keeps all (the official behaviour).
    Returns:
        ``[min(N, cap)]`` (``[N]`` when ``cap`` is 0) ascending long indices into the
        positives, on ``matched``'s device.
    """
    if matched.shape != scores.shape or matched.dim() != 1:
        raise ValueError(f"balanced_positives: matched {tuple(matched.shape)} and scores "
                         f"{tuple(scores.shape)} must be the same 1-D shape")
    if cap < 0:
        raise ValueError(f"balanced_positives: cap must be >= 0, got {cap}")
    count = len(matched)
    if cap == 0 or count <= cap:
        return torch.arange(count, device=matched.device)
    device = matched.device
    matched, scores = matched.cpu(), scores.detach().cpu()
    ranked = []  # 1. per person, their proposals best first, then at random
    for person in matched.unique():
        members = (matched == person).nonzero()[:, 0]  # ascending, so ties go as in
        best = int(scores[members].argmax())            # select_per_person
        others = torch.cat([members[:best], members[best + 1:]])
        ranked.append(torch.cat([members[best:best + 1], others[torch.randperm(len(others))]]))
    taken: list[torch.Tensor] = []  # 2. rank by rank, people shuffled within a rank
    for rank in range(max(len(members) for members in ranked)):
        layer = torch.stack([members[rank] for members in ranked if len(members) > rank])
        taken.extend(layer[torch.randperm(len(layer))])
        if len(taken) >= cap:
            break
    return torch.stack(taken[:cap]).sort().values.to(device)
