"""Why do Warp depth maps differ between CPU and CUDA? (device diagnostic)"""
import torch
import warp as wp

import ops.raster as R
from ops._warp import launch, ready
from tests.test_raster import K, SIZE, blobs

FACE_SPAN = 2**24
FAR = 1.0e30


@wp.kernel
def old_two_pass_kernel(screen: wp.array2d(dtype=wp.vec3), faces: wp.array(dtype=wp.vec3i),
                        near: float, write_ids: int, zbuf: wp.array3d(dtype=float),
                        face_id: wp.array3d(dtype=int)):
    p, f = wp.tid()
    a = screen[p, faces[f][0]]
    b = screen[p, faces[f][1]]
    c = screen[p, faces[f][2]]
    if wp.min(wp.min(a[2], b[2]), c[2]) < near:
        return
    area = R._edge(a, b, c[0], c[1])
    if wp.abs(area) < 1.0e-12:
        return
    height = zbuf.shape[1]
    width = zbuf.shape[2]
    x0 = wp.max(int(wp.ceil(wp.min(wp.min(a[0], b[0]), c[0]) - 0.5)), 0)
    x1 = wp.min(int(wp.floor(wp.max(wp.max(a[0], b[0]), c[0]) - 0.5)), width - 1)
    y0 = wp.max(int(wp.ceil(wp.min(wp.min(a[1], b[1]), c[1]) - 0.5)), 0)
    y1 = wp.min(int(wp.floor(wp.max(wp.max(a[1], b[1]), c[1]) - 0.5)), height - 1)
    for y in range(y0, y1 + 1):
        for x in range(x0, x1 + 1):
            px = float(x) + 0.5
            py = float(y) + 0.5
            l0 = R._edge(b, c, px, py) / area
            l1 = R._edge(c, a, px, py) / area
            l2 = R._edge(a, b, px, py) / area
            if l0 >= 0.0 and l1 >= 0.0 and l2 >= 0.0:
                depth = 1.0 / (l0 / a[2] + l1 / b[2] + l2 / c[2])
                if write_ids == 0:
                    wp.atomic_min(zbuf, p, y, x, depth)
                elif depth == zbuf[p, y, x]:
                    wp.atomic_min(face_id, p, y, x, f)


@wp.kernel
def packed_kernel(screen: wp.array2d(dtype=wp.vec3), faces: wp.array(dtype=wp.vec3i),
                  near: float, depth_scale: float, key: wp.array3d(dtype=wp.int64)):
    p, f = wp.tid()
    a = screen[p, faces[f][0]]
    b = screen[p, faces[f][1]]
    c = screen[p, faces[f][2]]
    if wp.min(wp.min(a[2], b[2]), c[2]) < near:
        return
    area = R._edge(a, b, c[0], c[1])
    if wp.abs(area) < 1.0e-12:
        return
    height = key.shape[1]
    width = key.shape[2]
    x0 = wp.max(int(wp.ceil(wp.min(wp.min(a[0], b[0]), c[0]) - 0.5)), 0)
    x1 = wp.min(int(wp.floor(wp.max(wp.max(a[0], b[0]), c[0]) - 0.5)), width - 1)
    y0 = wp.max(int(wp.ceil(wp.min(wp.min(a[1], b[1]), c[1]) - 0.5)), 0)
    y1 = wp.min(int(wp.floor(wp.max(wp.max(a[1], b[1]), c[1]) - 0.5)), height - 1)
    for y in range(y0, y1 + 1):
        for x in range(x0, x1 + 1):
            px = float(x) + 0.5
            py = float(y) + 0.5
            l0 = R._edge(b, c, px, py) / area
            l1 = R._edge(c, a, px, py) / area
            l2 = R._edge(a, b, px, py) / area
            if l0 >= 0.0 and l1 >= 0.0 and l2 >= 0.0:
                depth = wp.min(1.0 / (l0 / a[2] + l1 / b[2] + l2 / c[2]), 1.0e5)
                packed = wp.int64(depth * depth_scale) * wp.int64(FACE_SPAN) + wp.int64(f)
                wp.atomic_min(key, p, y, x, packed)


def two_pass(screen, faces):
    P = screen.shape[0]
    zbuf = torch.full((P, *SIZE), FAR, device=screen.device)
    ids = torch.full((P, *SIZE), 2**31 - 1, dtype=torch.int32, device=screen.device)
    ready()
    inputs = [wp.from_torch(screen.contiguous(), dtype=wp.vec3),
              wp.from_torch(faces.to(screen.device, torch.int32).contiguous(), dtype=wp.vec3i),
              R.NEAR]
    for write_ids in (0, 1):
        launch(old_two_pass_kernel, (P, faces.shape[0]),
               [*inputs, write_ids, wp.from_torch(zbuf), wp.from_torch(ids)], like=screen)
    return zbuf.cpu(), ids.cpu()


def packed(screen, faces):
    P = screen.shape[0]
    key = torch.full((P, *SIZE), 2**63 - 1, dtype=torch.int64, device=screen.device)
    ready()
    launch(packed_kernel, (P, faces.shape[0]),
           [wp.from_torch(screen.contiguous(), dtype=wp.vec3),
            wp.from_torch(faces.to(screen.device, torch.int32).contiguous(), dtype=wp.vec3i),
            R.NEAR, 1.0e6, wp.from_torch(key, dtype=wp.int64)], like=screen)
    key = key.cpu()
    return torch.where(key == 2**63 - 1, -1, key % FACE_SPAN)


for seed in (7, 9, 0):
    vertices, faces = blobs(seed)
    screen = R._screen(vertices, K)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"== blobs({seed}), faces {faces.shape[0]}")
    if "cuda" in devices:
        diff = (R._screen(vertices.cuda(), K.cuda()).cpu() - screen).abs().max()
        print(f"screen coordinates CPU vs CUDA projection: max diff {float(diff):.3g} px")
    results = {}
    for device in devices:
        zbuf, ids = two_pass(screen.to(device), faces)
        results[device] = (zbuf, ids, packed(screen.to(device), faces))
        holes = ((zbuf < 1e29) & (ids == 2**31 - 1)).sum()
        print(f"{device}: covered {(zbuf < 1e29).sum()}, covered without a face id "
              f"(pass-2 equality failed) {int(holes)}")
    if len(devices) == 2:
        (zc, ic, pc), (zg, ig, pg) = results["cpu"], results["cuda"]
        print("two-pass: zbuf coverage differs at", int(((zc < 1e29) != (zg < 1e29)).sum()),
              "; zbuf values differ (both covered) at",
              int(((zc != zg) & (zc < 1e29) & (zg < 1e29)).sum()),
              "; face ids differ at", int((ic != ig).sum()))
        print("packed: coverage differs at", int(((pc >= 0) != (pg >= 0)).sum()),
              "; face ids differ at", int((pc != pg).sum()))
        ids_cpu = torch.where(ic == 2**31 - 1, -1, ic.long())
        new_c = R._face_ids_warp(screen, faces.long(), SIZE)
        new_g = R._face_ids_warp(screen.cuda(), faces.long().cuda(), SIZE).cpu()
        print("ops.raster (new) CPU vs CUDA, same screen: coverage differs at",
              int(((new_c >= 0) != (new_g >= 0)).sum()), "; ids differ at", int((new_c != new_g).sum()),
              "; vs diag packed CPU ids differ at", int((new_c != pc).sum()))
        print("packed CPU vs two-pass CPU: coverage differs at",
              int(((pc >= 0) != (ids_cpu >= 0)).sum()), "; ids differ at", int((pc != ids_cpu).sum()))
        for device in devices:
            full = R.depth_maps(vertices.to(device), faces.to(device), K.to(device), SIZE,
                                backend="warp").cpu()
            results[device] = full
        d = results["cpu"], results["cuda"]
        print("depth_maps (projection per device): coverage differs at",
              int((torch.isfinite(d[0]) != torch.isfinite(d[1])).sum()))
