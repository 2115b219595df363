"""SDF grid against a brute-force reference, and against trimesh on a posed Anny body."""

import numpy as np
import pytest
import torch
import trimesh

from ops._warp import check_finite
from ops.sdf import (
    SDFGrid,
    bounding_boxes,
    closed_components,
    penetration_depth,
    sample_phi,
    sdf_grid,
)
from tests.mesh_reference import penetration_reference


def icosphere(radius: float, centre, subdivisions: int = 2):
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return torch.tensor(mesh.vertices + np.asarray(centre), dtype=torch.float32), \
        torch.tensor(mesh.faces, dtype=torch.long)


def random_blob(rng: np.random.Generator, centre, subdivisions=2):
    """A closed, star-shaped, bumpy mesh: a sphere with randomly scaled radii."""
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions)
    directions = mesh.vertices
    radii = 0.3 * (1 + 0.3 * np.sin(directions @ rng.normal(size=(3, 4))).sum(1) / 4)
    return directions * radii[:, None] + centre, mesh.faces


def grid_points(grid, person, n):
    axis = np.linspace(-1, 1, n)
    zz, yy, xx = np.meshgrid(axis, axis, axis, indexing="ij")
    unit = np.stack([xx, yy, zz], -1).reshape(-1, 3)
    return grid.center[person].numpy() + grid.half[person].item() * unit


def test_grid_matches_brute_force_on_random_blobs():
    rng = np.random.default_rng(7)
    meshes = [random_blob(rng, rng.normal(size=3)) for _ in range(2)]
    faces = torch.tensor(meshes[0][1])
    vertices = torch.tensor(np.stack([m[0] for m in meshes]), dtype=torch.float32)
    grid = sdf_grid(vertices, faces, grid_size=12)
    assert grid.phi.shape == (2, 12, 12, 12)
    for p, (verts, tris) in enumerate(meshes):
        expected = penetration_reference(grid_points(grid, p, 12), verts, tris)
        np.testing.assert_allclose(grid.phi[p].numpy().reshape(-1), expected, atol=2e-5)
        assert (expected > 0).sum() > 50  # the test does look inside


def test_nested_components_stay_inside():
    """A small closed shell inside a big one (like Anny's eyes in the head) must not flip
    the sign as a whole-mesh ray parity would; phi measures to the nearest surface."""
    outer_v, outer_f = icosphere(1.0, [0, 0, 0])
    inner_v, inner_f = icosphere(0.2, [0.3, 0, 0])
    vertices = torch.cat([outer_v, inner_v])[None]
    faces = torch.cat([outer_f, inner_f + len(outer_v)])
    assert len(closed_components(faces)) == 2
    points = torch.tensor([[0.3, 0.0, 0.0], [-0.5, 0.0, 0.0], [2.0, 0.0, 0.0]])
    phi = penetration_depth(vertices[0], faces, points)
    expected = penetration_reference(points.numpy(), vertices[0].numpy(), outer_f.numpy())
    assert phi[0] == pytest.approx(0.2, abs=0.02)  # inside the eye: nearest surface 0.2 away
    assert phi[1] == pytest.approx(expected[1], abs=1e-5) and phi[2] == 0


def test_matches_trimesh_on_a_posed_anny_body(anny_body):
    gen = torch.Generator().manual_seed(5)
    rotmats = torch.eye(3).repeat(1, anny_body.num_joints, 1, 1)
    from ops.geometry import axis_angle_to_matrix

    rotmats[:, 1:] = axis_angle_to_matrix(torch.randn(19, 3, generator=gen) * 0.25)
    vertices = anny_body(rotmats, anny_body.mean_shape()[None]).vertices.detach()
    grid = sdf_grid(vertices, anny_body.faces, grid_size=12, padding=0.05)
    points = grid_points(grid, 0, 12)
    mesh = trimesh.Trimesh(vertices[0].numpy(), anny_body.faces.numpy(), process=False)
    near = np.abs(trimesh.proximity.signed_distance(mesh, points))  # unsigned here
    inside = mesh.contains(points)
    expected = np.where(inside, near, 0.0)
    phi = grid.phi[0].numpy().reshape(-1)
    assert (expected > 0).sum() > 10
    np.testing.assert_allclose(phi, expected, atol=1e-4)


def test_sample_phi_interpolates_and_is_differentiable():
    vertices, faces = icosphere(0.5, [0.1, 0.2, 0.3], subdivisions=3)
    grid = sdf_grid(vertices[None], faces, grid_size=32)
    gen = torch.Generator().manual_seed(0)
    points = (torch.rand(200, 3, generator=gen) - 0.5) * 1.4 + torch.tensor([0.1, 0.2, 0.3])
    points.requires_grad_(True)
    sampled = sample_phi(grid, 0, points)
    exact = penetration_depth(vertices, faces, points.detach())
    assert (sampled.detach() - exact).abs().max() < 0.03  # trilinear error at 32^3
    sampled.sum().backward()
    inside = exact > 0.05
    # phi grows towards the centre: its gradient points inwards
    towards_centre = torch.tensor([0.1, 0.2, 0.3]) - points.detach()
    assert ((points.grad[inside] * towards_centre[inside]).sum(-1) > 0).all()
    outside_cube = torch.tensor([[5.0, 5.0, 5.0]])
    assert sample_phi(grid, 0, outside_cube).item() == 0.0


def sample_every_point(grid: SDFGrid, person: int, points: torch.Tensor) -> torch.Tensor:
    """Reference: one trilinear sample per point, wherever it lies."""
    local = (points - grid.center[person]) / grid.half[person]
    samples = torch.nn.functional.grid_sample(
        grid.phi[person][None, None].to(points.dtype), local.reshape(1, 1, 1, -1, 3),
        mode="bilinear", padding_mode="zeros", align_corners=True)
    return samples.reshape(-1)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size, support", [(2, None), (5, None), (32, None), (32, (3, 9, 20)),
                                           (16, (0, 15, 15)), (16, "empty")])
def test_sample_phi_equals_sampling_every_point(size, support, device):
    """Sampling only the points within a voxel or so of the non-zero voxels gives the
    values and gradients of sampling them all, bit for bit: on grids that are not 0 up to
    the border (the band of one voxel outside the cube counts), not 0 in a box inside the
    grid only, or 0 everywhere."""
    gen = torch.Generator().manual_seed(size)
    phi = torch.rand(2, size, size, size, generator=gen)
    if support == "empty":
        phi.zero_()
    elif support is not None:
        start, stop_y, stop_x = support
        kept = torch.zeros_like(phi)
        kept[:, start:stop_x, start:stop_y, start + 1:stop_x] = 1
        phi = phi * kept
    grid = SDFGrid(phi.to(device), torch.tensor([[0.0, 0.0, 0.0], [0.3, -0.2, 0.1]], device=device),
                   torch.tensor([0.5, 0.8], device=device))
    # points inside, in the band of one voxel around the cube, and far outside it
    points = (torch.rand(3000, 3, generator=gen).to(device) - 0.5) * 4.0 + grid.center[1]
    fast, slow = points.clone().requires_grad_(True), points.clone().requires_grad_(True)
    sampled, reference = sample_phi(grid, 1, fast), sample_every_point(grid, 1, slow)
    assert torch.equal(sampled.detach(), reference.detach())
    if support is None:
        local = ((points - grid.center[1]) / grid.half[1]).abs().amax(dim=-1)
        band = (local > 1) & (local < 1 + 2 / (size - 1))
        assert bool((reference[band] > 0).any())  # the band is sampled, not dropped
    assert bool((reference > 0).any()) == (support != "empty")
    weights = torch.rand(3000, generator=gen).to(device)
    (sampled * weights).sum().backward()
    (reference * weights).sum().backward()
    assert torch.equal(fast.grad, slow.grad)
    assert sample_phi(grid, 1, points[:0]).shape == (0,)


def test_bounding_boxes_and_the_finite_check():
    gen = torch.Generator().manual_seed(0)
    vertices = torch.randn(3, 500, 3, generator=gen)
    low, high = bounding_boxes(vertices)
    assert torch.equal(low, vertices.amin(dim=1)) and torch.equal(high, vertices.amax(dim=1))
    huge = torch.full((1, 4, 3), 3.0e38)  # finite, but the sum overflows: still accepted
    check_finite("test", huge)
    for bad in (float("nan"), float("inf"), -float("inf")):
        broken = vertices.clone()
        broken[2, 7, 1] = bad
        with pytest.raises(ValueError, match=r"person\(s\) \[2\] contain NaN or inf"):
            check_finite("test", broken)


def test_voxel_layout_is_z_y_x():
    """phi[p, iz, iy, ix] is the voxel at (x, y, z) = centre + half * (-1 + 2 i/(N-1))."""
    vertices, faces = icosphere(0.3, [0.0, 0.0, 0.0])
    vertices = vertices * torch.tensor([1.0, 2.0, 3.0])  # an ellipsoid, longest along z
    grid = sdf_grid(vertices[None], faces, grid_size=9, padding=0.0)
    middle = 4
    assert grid.phi[0, :, middle, middle].gt(0).sum() > grid.phi[0, middle, middle, :].gt(0).sum()


def test_empty_and_bad_inputs():
    vertices, faces = icosphere(0.5, [0, 0, 0])
    assert sdf_grid(vertices[None][:0], faces).phi.shape == (0, 32, 32, 32)
    broken = vertices.clone()
    broken[3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"person\(s\) \[0\] contain NaN"):
        sdf_grid(broken[None], faces)
    with pytest.raises(ValueError, match="face indices"):
        sdf_grid(vertices[None], faces + 1000)
    degenerate = torch.cat([faces, torch.tensor([[0, 0, 1], [5, 5, 5]])])  # zero-area faces
    phi = sdf_grid(vertices[None], degenerate, grid_size=10).phi
    torch.testing.assert_close(phi, sdf_grid(vertices[None], faces, grid_size=10).phi)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_kernel_matches_cpu():
    rng = np.random.default_rng(11)
    verts, tris = random_blob(rng, [0.0, 0.0, 0.0])
    vertices = torch.tensor(verts, dtype=torch.float32)[None]
    faces = torch.tensor(tris)
    cpu = sdf_grid(vertices, faces, grid_size=24)
    gpu = sdf_grid(vertices.cuda(), faces.cuda(), grid_size=24)
    torch.testing.assert_close(gpu.phi.cpu(), cpu.phi, atol=1e-6, rtol=0)
    points = torch.randn(100, 3, dtype=torch.float32) * 0.3
    torch.testing.assert_close(penetration_depth(vertices[0].cuda(), faces.cuda(), points.cuda())
                               .cpu(), penetration_depth(vertices[0], faces, points),
                               atol=1e-6, rtol=0)


def test_meshes_kept_between_calls_give_what_fresh_meshes_give():
    """sdf_grid keeps each topology's meshes and refits them to new vertices: after
    calls with more people, other people and another topology in between, a grid is
    the one freshly built meshes give."""
    import ops.sdf

    rng = np.random.default_rng(11)
    blobs = [random_blob(rng, rng.normal(size=3) * 0.3) for _ in range(4)]
    faces = torch.tensor(blobs[0][1])
    many = torch.tensor(np.stack([b[0] for b in blobs]), dtype=torch.float32)
    sphere_v, sphere_f = icosphere(0.4, [0, 0, 0])
    later = many[[2, 0]] + torch.tensor([0.05, -0.02, 0.01])
    sdf_grid(many, faces, grid_size=10)
    sdf_grid(sphere_v[None], sphere_f, grid_size=10)  # another topology: its own pool
    kept = sdf_grid(later, faces, grid_size=10)
    ops.sdf.clear_mesh_cache()
    fresh = sdf_grid(later, faces, grid_size=10)
    assert (fresh.phi > 0).sum() > 20
    torch.testing.assert_close(kept.phi, fresh.phi, rtol=0, atol=1e-6)
    for p, verts in enumerate(later.double().numpy()):
        expected = penetration_reference(grid_points(kept, p, 10), verts, blobs[0][1])
        np.testing.assert_allclose(kept.phi[p].numpy().reshape(-1), expected, atol=2e-5)


def test_faces_changed_in_place_are_a_new_topology():
    """The topology key is computed once per faces tensor; changing the tensor in place
    must not reuse the meshes of its old contents. Here the vertices are relabelled (the
    same surface), so the grid must stay the same."""
    rng = np.random.default_rng(12)
    verts, tris = random_blob(rng, [0.0, 0.0, 0.0])
    vertices = torch.tensor(verts, dtype=torch.float32)
    faces = torch.tensor(tris)
    before = sdf_grid(vertices[None], faces, grid_size=10)
    order = torch.from_numpy(rng.permutation(len(verts)))  # new label of each vertex
    relabelled = torch.empty_like(vertices)
    relabelled[order] = vertices
    faces.copy_(order[faces])  # in place: same tensor, other contents
    after = sdf_grid(relabelled[None], faces, grid_size=10)
    torch.testing.assert_close(after.phi, before.phi, rtol=0, atol=1e-6)
