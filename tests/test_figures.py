"""The report's figures (pipelines/figures.py): interpenetration in red, a ground-truth
row that a perfect model repeats, colours by matched box, one camera for every row, an
empty row for a model that finds nobody."""

import numpy as np
import torch
import trimesh
from PIL import Image

from pipelines.figures import (
    UNMATCHED,
    _matched_colours,
    colliding_vertices,
    comparison_figures,
    person_colours,
    scene_figure,
)
from pipelines.transforms import to_network_input

SIZE = (80, 128)


def test_scene_figure_marks_interpenetration_in_red():
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.4)
    body = torch.tensor(sphere.vertices, dtype=torch.float32)
    faces = torch.tensor(sphere.faces)
    def pair(gap):
        return torch.stack([body + torch.tensor([-gap, 0.0, 4.0]),
                            body + torch.tensor([gap, 0.0, 4.0])])

    apart, inside = pair(0.6), pair(0.2)
    assert not colliding_vertices(apart, faces).any() and colliding_vertices(inside, faces).any()
    K = torch.tensor([[60.0, 0.0, 40.0], [0.0, 60.0, 30.0], [0.0, 0.0, 1.0]])
    picture = scene_figure(np.zeros((60, 80, 3), dtype=np.uint8), K,
                           [("baseline", inside), ("full", apart)], faces)
    pixels = np.asarray(picture).astype(int)
    assert picture.size == (3 * 80, 2 * 60)
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
    assert red[:60].any() and not red[60:].any()  # only the colliding row shows red


class GroundTruthNetwork(torch.nn.Module):
    """Returns each image's annotated people as confident detections, in reverse order,
    so a figure can only colour them like the ground truth by matching their boxes."""

    def __init__(self, targets: list[dict]):
        super().__init__()
        self.targets = iter(targets)

    def forward(self, images, intrinsics):
        target = next(self.targets)
        order = torch.arange(len(target["boxes"]) - 1, -1, -1)
        return [{"boxes": target["boxes"][order], "scores": torch.linspace(1.0, 0.9, len(order)),
                 "rotmats": target["rotmats"][order], "shape": target["shape"][order],
                 "transl": target["transl"][order]}]


def test_figure_rows_of_a_perfect_model_repeat_the_ground_truth(tiny_synth_multi, anny_body,
                                                                tmp_path):
    multi = [s for s in tiny_synth_multi if s["meta"]["num_people"] >= 2][:2]
    targets = [to_network_input(s, *SIZE)["target"] for s in multi]
    names = comparison_figures(multi, {"perfect": GroundTruthNetwork(targets)}, anny_body,
                               0.5, SIZE, tmp_path, count=2)
    assert names == [f"{s['key']}.png" for s in multi]
    for name in names:
        pixels = np.asarray(Image.open(tmp_path / name)).astype(int)
        height = SIZE[0]
        assert pixels.shape == (2 * height, 3 * SIZE[1], 3)
        truth, perfect = pixels[18:height - 1], pixels[height + 18:2 * height - 1]  # no labels
        assert (truth != 235).any()  # people drawn
        # the same people posed in another batch order: rounding may move a shade by 1
        assert np.abs(perfect - truth).max() <= 1 and (perfect != truth).mean() < 1e-3


def test_figure_colours_follow_the_matched_annotated_person():
    gt = torch.tensor([[0.0, 0.0, 10.0, 20.0], [30.0, 0.0, 40.0, 20.0], [60.0, 0.0, 70.0, 20.0]])
    boxes = torch.stack([gt[2], gt[0] + 1.0, torch.tensor([100.0, 0.0, 110.0, 20.0])])
    colours = _matched_colours(boxes, torch.tensor([0.9, 0.8, 0.7]), gt)
    palette = person_colours(3)
    torch.testing.assert_close(colours, torch.stack([palette[2], palette[0], UNMATCHED]))
    assert _matched_colours(boxes[:0], torch.zeros(0), gt).shape == (0, 3)


def test_scene_figure_views_share_one_camera_across_rows():
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.3)
    body = torch.tensor(sphere.vertices, dtype=torch.float32) + torch.tensor([0.0, 0.0, 4.0])
    faces = torch.tensor(sphere.faces)
    far = body + torch.tensor([3.0, 0.0, 0.0])  # beside it: apart in the top view
    K = torch.tensor([[60.0, 0.0, 40.0], [0.0, 60.0, 30.0], [0.0, 0.0, 1.0]])
    picture = scene_figure(np.zeros((60, 80, 3), dtype=np.uint8), K,
                           [("alone", body[None]), ("with another", torch.stack([body, far]))],
                           faces)
    pixels = np.asarray(picture).astype(int)
    drawn = (pixels != 235).any(-1)
    alone, both = drawn[18:58, 82:158], drawn[60 + 18:118, 82:158]  # top views, no labels
    assert alone.any() and both.sum() > alone.sum()
    assert not (alone & ~both).any()  # the lone sphere sits where it does beside the other


class NobodyNetwork(torch.nn.Module):
    """Detects nobody confidently: its one box scores below the figure's threshold."""

    def __init__(self, body):
        super().__init__()
        self.joints, self.shape_dim = body.num_joints, body.shape_dim

    def forward(self, images, intrinsics):
        return [{"boxes": torch.tensor([[10.0, 10.0, 30.0, 60.0]]), "scores": torch.tensor([0.1]),
                 "rotmats": torch.eye(3).expand(1, self.joints, 3, 3).clone(),
                 "shape": torch.zeros(1, self.shape_dim),
                 "transl": torch.tensor([[0.0, 0.0, 5.0]])}]


def test_a_model_without_confident_people_draws_an_empty_row(tiny_synth_multi, anny_body,
                                                             tmp_path):
    sample = tiny_synth_multi[0]
    (name,) = comparison_figures([sample], {"nobody": NobodyNetwork(anny_body)}, anny_body,
                                 0.5, SIZE, tmp_path, count=1)
    pixels = np.asarray(Image.open(tmp_path / name)).astype(int)
    height = SIZE[0]
    background_or_divider = {235, 60}
    truth_views = pixels[18:height - 1, SIZE[1] + 2:]  # top and side views, below the label
    views = pixels[height + 18:2 * height - 1, SIZE[1] + 2:]
    assert not set(np.unique(truth_views)) <= background_or_divider  # people drawn
    assert set(np.unique(views)) <= background_or_divider  # nobody drawn
