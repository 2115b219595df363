"""Per-person rasterization against a brute-force z-buffer; gradients; CUDA conformance."""

import numpy as np
import pytest
import torch
import trimesh

from ops.raster import depth_maps, instance_map, raster_depth, rasterize
from tests.mesh_reference import zbuffer_reference

K = torch.tensor([[60.0, 0.0, 28.0], [0.0, 60.0, 20.0], [0.0, 0.0, 1.0]])
SIZE = (40, 56)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def blobs(seed: int, count: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` bumpy closed meshes (same topology) in front of the camera, overlapping."""
    rng = np.random.default_rng(seed)
    sphere = trimesh.creation.icosphere(subdivisions=2)
    people = []
    for _ in range(count):
        radii = 0.4 * (1 + 0.25 * np.sin(sphere.vertices @ rng.normal(size=(3, 3))).sum(1) / 3)
        centre = [rng.uniform(-0.6, 0.6), rng.uniform(-0.4, 0.4), rng.uniform(3.0, 4.0)]
        people.append(sphere.vertices * radii[:, None] + centre)
    return torch.tensor(np.stack(people), dtype=torch.float32), torch.tensor(sphere.faces)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_depth_matches_brute_force_zbuffer(seed):
    vertices, faces = blobs(seed)
    depth = depth_maps(vertices, faces, K, SIZE, backend="cpu")
    for p in range(vertices.shape[0]):
        expected = zbuffer_reference(vertices[p].double().numpy(), faces.numpy(),
                                     K.double().numpy(), *SIZE)
        ours = depth[p].numpy()
        assert (np.isfinite(ours) == np.isfinite(expected)).mean() > 0.995  # edge pixels may differ
        both = np.isfinite(ours) & np.isfinite(expected)
        assert both.sum() > 100
        np.testing.assert_allclose(ours[both], expected[both], atol=1e-4)


def test_raster_outputs_are_consistent():
    vertices, faces = blobs(3)
    raster = rasterize(vertices, faces, K, SIZE)
    assert raster.face_id.shape == (3, *SIZE) and raster.face_id.dtype == torch.long
    assert raster.bary.shape == (3, *SIZE, 3)
    covered = raster.face_id >= 0
    torch.testing.assert_close(raster.bary[covered].sum(-1), torch.ones(int(covered.sum())))
    assert (raster.bary[covered] >= -1e-5).all() and (raster.bary[~covered] == 0).all()
    # the barycentric point of the covering face lies on the pixel's ray
    person, row, col = covered.nonzero(as_tuple=True)
    corners = vertices[person[:, None], faces[raster.face_id[covered]]]
    point = (raster.bary[covered][..., None] * corners).sum(1)
    uv = (point @ K.T)[:, :2] / point[:, 2:]
    torch.testing.assert_close(uv, torch.stack([col + 0.5, row + 0.5], -1).float(), atol=1e-3,
                               rtol=0)


def test_raster_depth_equals_depth_maps():
    vertices, faces = blobs(9)
    torch.testing.assert_close(raster_depth(rasterize(vertices, faces, K, SIZE), vertices, faces),
                               depth_maps(vertices, faces, K, SIZE))


def test_instance_map_is_the_front_person():
    vertices, faces = blobs(4)
    depth = depth_maps(vertices, faces, K, SIZE)
    ids = instance_map(depth)
    nearest = depth.argmin(0) + 1
    foreground = torch.isfinite(depth).any(0)
    assert torch.equal(ids[foreground], nearest[foreground])
    assert (ids[~foreground] == 0).all() and foreground.any() and (ids == 2).any()
    assert instance_map(depth[:0]).shape == SIZE and instance_map(depth[:0]).sum() == 0


def test_depth_gradient_matches_finite_differences():
    vertices, faces = blobs(5, count=2)
    vertices = vertices.double().requires_grad_(True)
    weights = torch.rand(2, *SIZE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def objective(v):
        depth = depth_maps(v, faces, K.double(), SIZE)
        return torch.where(torch.isfinite(depth), depth * weights, 0).sum()

    objective(vertices).backward()
    step = 1e-6  # small enough that no pixel changes face
    for p, v, axis in [(0, 5, 2), (1, 40, 0), (1, 77, 1), (0, 100, 2)]:
        shifted = vertices.detach().clone()
        shifted[p, v, axis] += step
        plus = objective(shifted)
        shifted[p, v, axis] -= 2 * step
        numeric = (plus - objective(shifted)) / (2 * step)
        assert vertices.grad[p, v, axis].item() == pytest.approx(numeric.item(), rel=1e-3, abs=1e-4)
    # moving a person away by d moves its surface by d (for the z-axis gradient sum)
    assert vertices.grad[..., 2].sum() > 0


def test_degenerate_behind_camera_and_outside_image():
    vertices, faces = blobs(6, count=2)
    with_degenerate = torch.cat([faces, torch.tensor([[0, 0, 1], [3, 3, 3]])])
    torch.testing.assert_close(depth_maps(vertices, with_degenerate, K, SIZE),
                               depth_maps(vertices, faces, K, SIZE))
    behind = vertices * torch.tensor([1.0, 1.0, -1.0])
    assert torch.isinf(depth_maps(behind, faces, K, SIZE)).all()
    aside = vertices + torch.tensor([50.0, 0.0, 0.0])
    assert torch.isinf(depth_maps(aside, faces, K, SIZE)).all()
    assert depth_maps(vertices[:0], faces, K, SIZE).shape == (0, *SIZE)
    broken = vertices.clone()
    broken[1, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"rasterize: vertices of person\(s\) \[1\]"):
        depth_maps(broken, faces, K, SIZE)
    with pytest.raises(ValueError, match="backend must be one of"):
        depth_maps(vertices, faces, K, SIZE, backend="opengl")


@cuda
def test_warp_on_cuda_matches_cpu():
    vertices, faces = blobs(7)
    cpu = depth_maps(vertices, faces, K, SIZE, backend="warp")
    gpu = depth_maps(vertices.cuda(), faces.cuda(), K.cuda(), SIZE, backend="warp").cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-5, rtol=0)


@cuda
def test_nvdiffrast_matches_cpu():
    pytest.importorskip("nvdiffrast.torch")
    vertices, faces = blobs(8)
    cpu = depth_maps(vertices, faces, K, SIZE, backend="cpu")
    vertices_gpu = vertices.cuda().requires_grad_(True)
    gpu = depth_maps(vertices_gpu, faces.cuda(), K.cuda(), SIZE, backend="nvdiffrast")
    both = torch.isfinite(cpu) & torch.isfinite(gpu.detach().cpu())
    assert (torch.isfinite(cpu) == torch.isfinite(gpu.detach().cpu())).float().mean() > 0.995
    torch.testing.assert_close(gpu.detach().cpu()[both], cpu[both], atol=1e-4, rtol=0)
    torch.where(torch.isfinite(gpu), gpu, 0).sum().backward()
    cpu_vertices = vertices.clone().requires_grad_(True)
    cpu_depth = depth_maps(cpu_vertices, faces, K, SIZE, backend="cpu")
    torch.where(torch.isfinite(cpu_depth), cpu_depth, 0).sum().backward()
    # per-vertex gradients differ where an edge pixel picks another face; totals agree
    torch.testing.assert_close(vertices_gpu.grad.cpu().sum(1), cpu_vertices.grad.sum(1),
                               atol=0.5, rtol=0.05)


@cuda
def test_warp_gradients_on_cuda_match_cpu():
    vertices, faces = blobs(9)
    grads = []
    for device in ("cpu", "cuda"):
        leaf = vertices.to(device).detach().requires_grad_(True)
        depth = depth_maps(leaf, faces.to(device), K.to(device), SIZE, backend="warp")
        weights = torch.linspace(0.5, 1.5, SIZE[1], device=device)  # not a plain sum
        (torch.where(torch.isfinite(depth), depth, 0) * weights).sum().backward()
        grads.append(leaf.grad.cpu())
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[1], grads[0], atol=1e-4, rtol=1e-4)
