"""Interpenetration loss (Eq. 2-3) and pairwise collision volume."""

import math

import numpy as np
import pytest
import torch
import trimesh

from ops.collision import collision_loss, collision_volume, geman_mcclure, overlapping_pairs
from tests.mesh_reference import penetration_reference


def sphere(radius: float, subdivisions: int = 3):
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return torch.tensor(mesh.vertices, dtype=torch.float32), torch.tensor(mesh.faces)


def lens_volume(radius: float, distance: float) -> float:
    """Intersection volume of two balls of equal radius whose centres are `distance` apart."""
    return math.pi * (4 * radius + distance) * (2 * radius - distance) ** 2 / 12


def test_zero_without_overlap_and_for_fewer_than_two_people():
    vertices, faces = sphere(0.3)
    apart = torch.stack([vertices, vertices + torch.tensor([1.0, 0, 0])]).requires_grad_(True)
    loss = collision_loss(apart, faces)
    assert loss.item() == 0.0
    loss.backward()  # still part of the graph
    assert collision_loss(vertices[None], faces).item() == 0.0
    assert collision_loss(vertices[None][:0], faces).item() == 0.0
    assert collision_volume(apart.detach(), faces).abs().sum() == 0


@pytest.mark.parametrize("robust", ["paper", "official"])
def test_matches_the_formula_with_exact_phi(robust):
    vertices, faces = sphere(0.3)
    people = torch.stack([vertices, vertices + torch.tensor([0.2, 0.05, 0.0])])
    sigma = 0.2
    loss = collision_loss(people, faces, grid_size=48, sigma=sigma, robust=robust).item()
    v, f = people.double().numpy(), faces.numpy()
    phi_01 = penetration_reference(v[1], v[0], f)  # phi of person 0 at person 1's vertices
    phi_10 = penetration_reference(v[0], v[1], f)
    if robust == "paper":
        expected = sum(geman_mcclure(torch.tensor(x.sum()), sigma).item() for x in (phi_01, phi_10))
    else:
        half = 1.2 * 0.3  # each person's cube half-size
        expected = sum(geman_mcclure(torch.tensor(x / half), sigma).sum().item()
                       for x in (phi_01, phi_10)) / 4
    assert loss == pytest.approx(expected, rel=0.05)
    assert loss > 0


def test_every_overlapping_pair_counts_on_its_own():
    """A-B and B-C overlap, A-C do not: the loss is the sum of both pairs' terms (the
    official code's >=3-person filter is not reproduced)."""
    vertices, faces = sphere(0.3)
    offsets = torch.tensor([[0.0, 0, 0], [0.5, 0, 0], [1.0, 0, 0]])
    people = vertices[None] + offsets[:, None]
    overlap = overlapping_pairs(people)
    assert overlap.tolist() == [[False, True, False], [True, False, True], [False, True, False]]
    pair_ab = collision_loss(people[:2], faces, robust="official") * 4  # undo the 1/n^2
    pair_bc = collision_loss(people[1:], faces, robust="official") * 4
    total = collision_loss(people, faces, robust="official") * 9
    assert total.item() == pytest.approx((pair_ab + pair_bc).item(), rel=1e-5)


def test_gradient_descent_separates_two_overlapping_bodies(anny_body):
    rest = torch.eye(3).repeat(2, anny_body.num_joints, 1, 1)
    bodies = anny_body(rest, anny_body.mean_shape().repeat(2, 1)).vertices.detach()
    transl = torch.tensor([[0.0, 0.0, 3.0], [0.12, 0.0, 3.05]], requires_grad=True)
    optimizer = torch.optim.SGD([transl], lr=0.05)
    losses = []
    for _ in range(15):
        loss = collision_loss(bodies + transl[:, None], anny_body.faces, robust="official")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 0
    assert losses[-1] < 0.5 * losses[0]
    gap = (transl[1] - transl[0]).detach()
    assert gap[0] > 0.12  # pushed apart along x


def test_collision_volume_of_two_balls():
    vertices, faces = sphere(0.4, subdivisions=4)
    distance = 0.37
    people = torch.stack([vertices, vertices + torch.tensor([distance, 0.011, -0.007])])
    volume = collision_volume(people, faces, grid_size=64)
    assert volume.shape == (2, 2) and volume.dtype == torch.float64
    assert volume[0, 0] == 0 and volume[0, 1] == volume[1, 0]
    exact = lens_volume(0.4, float(np.linalg.norm([distance, 0.011, -0.007])))
    assert volume[0, 1].item() == pytest.approx(exact, rel=0.06)


def test_collision_volume_of_two_boxes():
    box = trimesh.creation.box(extents=[0.4, 0.6, 0.3])
    vertices, faces = torch.tensor(box.vertices, dtype=torch.float32), torch.tensor(box.faces)
    shift = torch.tensor([0.27, 0.13, -0.05])
    volume = collision_volume(torch.stack([vertices, vertices + shift]), faces, grid_size=64)
    exact = (0.4 - 0.27) * (0.6 - 0.13) * (0.3 - 0.05)
    assert volume[0, 1].item() == pytest.approx(exact, rel=0.08)


def test_nan_is_a_clear_error():
    vertices, faces = sphere(0.3)
    people = torch.stack([vertices, vertices])
    people[1, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"collision_loss: vertices of person\(s\) \[1\]"):
        collision_loss(people, faces)
    with pytest.raises(ValueError, match="robust must be one of"):
        collision_loss(people[:1], faces, robust="huber")


def test_volumes_are_pairwise_so_a_subset_is_a_block_of_the_whole():
    """The evaluation computes one volume matrix for the union of two sets of people
    and reads each set's block: the same as computing each set alone."""
    vertices, faces = sphere(0.3, subdivisions=3)
    centres = torch.rand(5, 3, generator=torch.Generator().manual_seed(7)) * 0.8
    people = torch.stack([vertices + c for c in centres])
    whole = collision_volume(people, faces, grid_size=32)
    assert (whole > 0).sum() >= 4  # several pairs overlap
    for subset in ([0, 2, 4], [1, 3], [0, 1, 2, 3]):
        index = torch.tensor(subset)
        alone = collision_volume(people[index], faces, grid_size=32)
        torch.testing.assert_close(whole[index][:, index], alone)


def test_collision_volume_matches_brute_force_on_random_blobs():
    """The fast volume (voxels in both bounding boxes only, BVH inside tests) against
    the definition: every voxel of each person's grid tested with the winding number."""
    from ops.sdf import SDF_PADDING, person_cubes
    from tests.mesh_reference import winding_number
    from tests.test_sdf import random_blob

    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0, 0.0], [0.35, 0.05, 0.0], [0.15, 0.3, 0.1]])
    blobs = [random_blob(rng, c + rng.normal(size=3) * 0.03) for c in centres]
    faces = torch.tensor(blobs[0][1])
    people = torch.tensor(np.stack([b[0] for b in blobs]), dtype=torch.float32)
    size = 20
    volume = collision_volume(people, faces, grid_size=size)
    center, half = person_cubes(people, SDF_PADDING)
    axis = torch.linspace(-1.0, 1.0, size)
    zz, yy, xx = torch.meshgrid(axis, axis, axis, indexing="ij")
    expected = np.zeros((3, 3))
    for i in range(3):
        voxels = (center[i] + half[i] * torch.stack([xx, yy, zz], -1)).reshape(-1, 3).double()
        inside_i = winding_number(voxels.numpy(), people[i].double().numpy(), blobs[0][1]) > 0.5
        cell = (2 * half[i].item() / (size - 1)) ** 3
        for j in range(3):
            if j != i:
                inside_j = winding_number(voxels.numpy(), people[j].double().numpy(),
                                          blobs[0][1]) > 0.5
                expected[i, j] += 0.5 * (inside_i & inside_j).sum() * cell
    expected = expected + expected.T
    assert (expected > 0).sum() == 6  # every pair intersects
    np.testing.assert_allclose(volume.numpy(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("robust", ["paper", "official"])
def test_moved_grids_give_the_loss_of_people_voxelised_where_they_are(robust):
    """The fast path of refinement's rigid phase (grids computed once, moved with their
    people) against the reference (every person voxelised again where it stands), on
    random blobs moved by random offsets: same loss, same gradients."""
    from ops.sdf import moved, sdf_grid
    from tests.test_sdf import random_blob

    rng = np.random.default_rng(11)
    blobs = [random_blob(rng, c) for c in ([0.0, 0.0, 0.0], [0.3, 0.05, 0.0], [0.1, 0.3, 0.1])]
    faces = torch.tensor(blobs[0][1])
    people = torch.tensor(np.stack([b[0] for b in blobs]), dtype=torch.float32)
    grid = sdf_grid(people, faces, 24)
    for trial in range(3):
        offsets = torch.tensor(rng.normal(size=(3, 3)) * 0.04, dtype=torch.float32)
        results = []
        for sdf in (None, moved(grid, offsets)):
            leaf = (people + offsets[:, None]).requires_grad_(True)
            loss = collision_loss(leaf, faces, 24, robust=robust, sdf=sdf)
            loss.backward()
            results.append((loss.detach(), leaf.grad))
        (loss_ref, grad_ref), (loss_fast, grad_fast) = results
        assert loss_ref > 0, trial
        torch.testing.assert_close(loss_fast, loss_ref, atol=1e-6, rtol=1e-4)
        torch.testing.assert_close(grad_fast, grad_ref, atol=1e-6, rtol=1e-3)


def test_grids_for_other_people_are_a_clear_error():
    from ops.sdf import moved, sdf_grid

    vertices, faces = sphere(0.3)
    people = torch.stack([vertices, vertices + torch.tensor([0.2, 0.0, 0.0])])
    grid = sdf_grid(people, faces, 16)
    with pytest.raises(ValueError, match=r"sdf must hold 3 people's 16\^3 grids"):
        collision_loss(torch.cat([people, people[:1]]), faces, 16, sdf=grid)
    with pytest.raises(ValueError, match="sdf must hold 2 people's 32"):
        collision_loss(people, faces, 32, sdf=grid)
    with pytest.raises(ValueError, match=r"moved: offsets must be \[2, 3\]"):
        moved(grid, torch.zeros(3, 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_with_gradients():
    from tests.test_sdf import random_blob

    rng = np.random.default_rng(5)
    blobs = [random_blob(rng, c) for c in ([0.0, 0.0, 0.0], [0.3, 0.05, 0.0], [0.1, 0.3, 0.1])]
    faces = torch.tensor(blobs[0][1])
    people = torch.tensor(np.stack([b[0] for b in blobs]), dtype=torch.float32)
    results = []
    for device in ("cpu", "cuda"):
        leaf = people.to(device).detach().requires_grad_(True)
        loss = collision_loss(leaf, faces.to(device), grid_size=24, robust="official")
        loss.backward()
        volume = collision_volume(people.to(device), faces.to(device), grid_size=24)
        results.append((loss.detach().cpu(), leaf.grad.cpu(), volume.cpu()))
    (loss_cpu, grad_cpu, volume_cpu), (loss_gpu, grad_gpu, volume_gpu) = results
    assert loss_cpu > 0 and volume_cpu.sum() > 0
    torch.testing.assert_close(loss_gpu, loss_cpu, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(grad_gpu, grad_cpu, atol=1e-6, rtol=1e-3)
    # a voxel whose distance is a last-bit tie may count on one device only: a few voxels
    torch.testing.assert_close(volume_gpu, volume_cpu, atol=5e-4, rtol=1e-3)
