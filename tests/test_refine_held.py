"""The SDF fields refinement keeps between steps (pipelines.refine_held.Fields) against
the reference -- every person voxelised again where it stands -- on random blobs: people
moved rigidly are exact, people not in an overlapping pair are never voxelised, and a
person brought into contact is voxelised then."""

from __future__ import annotations

import numpy as np
import torch

from ops.collision import collision_loss
from pipelines.refine_held import Fields
from tests.test_sdf import random_blob

GRID = 24


def blobs(rng: np.random.Generator, centres: list[list[float]]):
    made = [random_blob(rng, centre) for centre in centres]
    faces = torch.tensor(made[0][1])
    return torch.tensor(np.stack([b[0] for b in made]), dtype=torch.float32), faces


def reference(vertices: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and gradient with every person in an overlapping pair voxelised now."""
    leaf = vertices.clone().requires_grad_(True)
    loss = collision_loss(leaf, faces, GRID, robust="official")
    loss.backward()
    return loss.detach(), leaf.grad


def test_fields_of_people_moved_rigidly_match_voxelising_them_again():
    rng = np.random.default_rng(5)
    # three blobs overlapping each other, a fourth far away
    people, faces = blobs(rng, [[0.0, 0.0, 0.0], [0.3, 0.05, 0.0], [0.1, 0.3, 0.1],
                                [3.0, 0.0, 0.0]])
    fields = Fields(faces, GRID, len(people), people.device)
    for trial in range(3):
        transl = torch.tensor(rng.normal(size=(4, 3)) * 0.04, dtype=torch.float32)
        vertices = people + transl[:, None]
        leaf = vertices.clone().requires_grad_(True)
        loss = collision_loss(leaf, faces, GRID, robust="official", sdf=fields.at(leaf, transl))
        loss.backward()
        loss_ref, grad_ref = reference(vertices, faces)
        assert loss_ref > 0, trial
        torch.testing.assert_close(loss.detach(), loss_ref, atol=1e-6, rtol=1e-4)
        torch.testing.assert_close(leaf.grad, grad_ref, atol=1e-6, rtol=1e-3)
        assert fields.known.tolist() == [True, True, True, False]  # the far one: never
    # the far person brought into contact is voxelised when it arrives
    transl = torch.zeros(4, 3)
    transl[3, 0] = -2.8
    vertices = people + transl[:, None]
    loss = collision_loss(vertices, faces, GRID, robust="official",
                          sdf=fields.at(vertices, transl))
    assert fields.known.all()
    torch.testing.assert_close(loss, reference(vertices, faces)[0], atol=1e-6, rtol=1e-4)


def test_a_person_posed_anew_is_exact_again_once_voxelised():
    """A changed shape (here: one blob scaled) leaves its field stale until
    :meth:`Fields.voxelise`; after it, the loss is the reference's."""
    rng = np.random.default_rng(6)
    people, faces = blobs(rng, [[0.0, 0.0, 0.0], [0.3, 0.05, 0.0]])
    fields = Fields(faces, GRID, 2, people.device)
    transl = torch.zeros(2, 3)
    fields.at(people, transl)
    grown = people.clone()
    grown[1] = people[1].mean(0) + 1.3 * (people[1] - people[1].mean(0))
    stale = collision_loss(grown, faces, GRID, robust="official", sdf=fields.at(grown, transl))
    expected = reference(grown, faces)[0]
    assert not torch.allclose(stale, expected, atol=1e-6, rtol=1e-4)
    fields.voxelise(torch.tensor([False, True]), grown, transl)
    fresh = collision_loss(grown, faces, GRID, robust="official", sdf=fields.at(grown, transl))
    torch.testing.assert_close(fresh, expected, atol=1e-6, rtol=1e-4)
