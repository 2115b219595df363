"""Bootstrap intervals: known answers, a slow reference, and paired differences."""

from __future__ import annotations

import numpy as np
import pytest

from ops.bootstrap import group_mean, interval, paired, ratio, replicate_weights
from pipelines.evaluation import metric_replicates, record_weights, resampling_block, summarise


def records(values: list[tuple[float, float]], groups: list[str] | None = None) -> list[dict]:
    groups = groups or ["all"] * len(values)
    return [{"key": f"k{i}", "group": g, "values": {"pck_all": v, "collision": (v[0] > 0, 1.0)}}
            for i, (v, g) in enumerate(zip(values, groups, strict=True))]


def test_constant_images_give_a_zero_width_interval():
    weights = replicate_weights(30, 500, seed=0)
    draws = ratio(weights, np.full(30, 2.0), np.full(30, 4.0))
    result = interval(0.5, draws)
    assert result.low == result.high == result.value == 0.5


def test_replicates_match_a_slow_loop_and_are_seeded():
    rng = np.random.default_rng(3)
    numerator, denominator = rng.random(25), rng.integers(1, 4, 25).astype(float)
    weights = replicate_weights(25, 200, seed=7)
    assert np.array_equal(weights, replicate_weights(25, 200, seed=7))
    assert not np.array_equal(weights, replicate_weights(25, 200, seed=8))
    assert (weights.sum(axis=1) == 25).all()
    draws = np.random.default_rng(7).integers(0, 25, size=(200, 25))  # the same draws
    slow = [numerator[d].sum() / denominator[d].sum() for d in draws]
    np.testing.assert_allclose(ratio(weights, numerator, denominator), slow)


def test_interval_covers_the_mean_of_a_known_distribution():
    rng = np.random.default_rng(0)
    numerator = rng.normal(10.0, 2.0, 400)
    weights = replicate_weights(400, 2000, seed=1)
    result = interval(numerator.mean(), ratio(weights, numerator, np.ones(400)))
    half_width = 1.96 * 2.0 / np.sqrt(400)  # the normal-theory interval
    assert result.low < 10.0 < result.high
    assert (result.high - result.low) / 2 == pytest.approx(half_width, rel=0.15)


def test_paired_difference_of_identical_models_is_exactly_zero():
    rng = np.random.default_rng(1)
    numerator = rng.random(40)
    weights = replicate_weights(40, 300, seed=2)
    draws = ratio(weights, numerator, np.ones(40))
    difference = paired(0.3, 0.3, draws, draws.copy())
    assert difference.value == difference.low == difference.high == 0.0


def test_paired_interval_is_narrower_than_unpaired_for_correlated_models():
    rng = np.random.default_rng(4)
    hardness = rng.normal(0, 5, 100)  # images differ a lot; models differ a little
    a, b = 50 + hardness + rng.normal(0, 0.5, 100), 49 + hardness + rng.normal(0, 0.5, 100)
    weights = replicate_weights(100, 2000, seed=0)
    draws_a, draws_b = ratio(weights, a, np.ones(100)), ratio(weights, b, np.ones(100))
    difference = paired(a.mean(), b.mean(), draws_a, draws_b)
    assert difference.low > 0  # the paired interval sees the 1-point gain
    spread_a = interval(a.mean(), draws_a)
    assert spread_a.high - spread_a.low > 5 * (difference.high - difference.low)


def test_group_mean_is_the_mean_of_group_ratios():
    numerator, denominator = np.array([1.0, 3.0, 10.0]), np.array([1.0, 1.0, 2.0])
    groups = np.array(["a", "a", "b"])
    everything = np.ones((1, 3))
    assert group_mean(everything, numerator, denominator, groups)[0] == pytest.approx(
        (4 / 2 + 10 / 2) / 2)


def test_summary_keys_bounds_counts_and_groups():
    data = records([(1.0, 1.0), (0.0, 1.0), (0.5, 1.0), (1.0, 2.0)], ["x", "x", "y", "y"])
    for record in data:
        for name in ("pck_matched", "matched", "mpjpe", "mpjpe_missed", "pa_mpjpe",
                     "depth_order", "collision_matched"):
            record["values"][name] = (0.0, 0.0)  # nothing measured: left out
    result = summarise(data, replicates=300, seed=0)
    assert result["pck_all"] == pytest.approx(100 * 2.5 / 5)
    assert result["pck_all_lo"] <= result["pck_all"] <= result["pck_all_hi"]
    assert result["pck_all_x"] == 50.0 and result["pck_all_y"] == pytest.approx(100 * 1.5 / 3)
    assert result["pck_all_group_mean"] == pytest.approx((50.0 + 50.0) / 2)
    assert result["collision_frames"] == 3  # a count of frames, not a share
    assert "mpjpe_mm" not in result and "depth_order_acc" not in result
    again = summarise(data, replicates=300, seed=0)
    assert again == result


def test_metric_replicates_of_one_group_ignore_the_others():
    data = records([(1.0, 1.0), (0.0, 1.0), (9.0, 1.0)], ["x", "x", "y"])
    weights = replicate_weights(3, 50, seed=0)
    point, draws = metric_replicates(data, weights, "pck_all", "x")
    assert point == 50.0
    with np.errstate(invalid="ignore"):
        expected = 100 * weights[:, 0] / (weights[:, 0] + weights[:, 1])  # image 2 is in y
    np.testing.assert_allclose(draws, expected)


def test_a_groups_frame_count_is_the_count_of_its_own_frames():
    """Frames with a collision in group x: 2 of its 3 images, whatever group y holds;
    each replicate counts the drawn copies of x's colliding frames (slow loop)."""
    data = records([(1.0, 1.0), (1.0, 1.0), (0.0, 1.0), (1.0, 1.0)], ["x", "x", "x", "y"])
    weights = replicate_weights(4, 50, seed=1)
    point, draws = metric_replicates(data, weights, "collision_frames", "x")
    assert point == 2.0
    expected = [sum(row[i] for i in (0, 1)) for row in weights]
    np.testing.assert_array_equal(draws, expected)
    point, _ = metric_replicates(data, weights, "collision_frames")
    assert point == 3.0
    with pytest.raises(ValueError, match="count"):
        metric_replicates(data, weights, "collision_frames", "mean")


def test_block_replicates_match_a_slow_loop():
    """Whole blocks are drawn (as many draws as blocks, in sorted label order), and every
    image weighs its block's count."""
    blocks = np.array(["b", "a", "b", "c", "a", "a", "d"])
    weights = replicate_weights(7, 300, seed=5, blocks=blocks)
    labels = sorted(set(blocks))
    draws = np.random.default_rng(5).integers(0, len(labels), size=(300, len(labels)))
    slow = np.array([[list(row).count(labels.index(b)) for b in blocks] for row in draws])
    np.testing.assert_array_equal(weights, slow)
    with pytest.raises(ValueError, match="each of the 7 images"):
        replicate_weights(7, 10, seed=0, blocks=blocks[:5])


def test_blocks_of_single_images_are_the_image_bootstrap():
    weights = replicate_weights(12, 100, seed=3, blocks=np.arange(12))
    np.testing.assert_array_equal(weights, replicate_weights(12, 100, seed=3))


def test_block_interval_sees_what_correlated_frames_hide():
    """40 videos of 50 frames, each video with its own offset: resampling frames one by one
    treats 2,000 near-copies as independent and gives an interval far narrower than the
    spread of the videos' means, which resampling whole videos recovers."""
    rng = np.random.default_rng(0)
    offsets = rng.normal(0.0, 3.0, 40)
    values = np.repeat(offsets, 50) + rng.normal(0.0, 0.5, 2000)
    videos = np.repeat(np.arange(40), 50)
    by_image = interval(values.mean(), ratio(replicate_weights(2000, 2000, 0), values,
                                             np.ones(2000)))
    by_video = interval(values.mean(), ratio(replicate_weights(2000, 2000, 0, videos), values,
                                             np.ones(2000)))
    half_width = 1.96 * offsets.std(ddof=1) / np.sqrt(40)  # normal theory over videos
    assert (by_video.high - by_video.low) / 2 == pytest.approx(half_width, rel=0.2)
    assert (by_image.high - by_image.low) < 0.25 * (by_video.high - by_video.low)


@pytest.mark.parametrize(("meta", "block"), [
    ({"sequence": "160422_haggling1", "camera": "00_16", "frame": 1234}, "160422_haggling1#12"),
    ({"sequence": "160422_haggling1", "camera": "00_30", "frame": 1299}, "160422_haggling1#12"),
    ({"sequence": "TS3", "frame": 99}, "TS3#0"),
    ({"sequence": "TS3", "frame": 100}, "TS3#1"),
    ({"subject": "S9", "action": "Directions_1", "camera": "S9_60457274", "frame": 250},
     "S9/Directions_1#2"),
    ({"sequence": "017"}, "017"),
    ({"layout": "scatter", "activities": ["stand"]}, None),
])
def test_resampling_blocks_follow_videos_not_cameras(meta, block):
    assert resampling_block(meta, 100) == block


def test_record_weights_draw_blocks_and_lone_images():
    data = records([(1.0, 1.0)] * 5)
    np.testing.assert_array_equal(record_weights(data, 50, 0), replicate_weights(5, 50, 0))
    for record, block in zip(data, ["v#0", "v#0", None, "w#0", "v#0"], strict=True):
        if block is not None:
            record["block"] = block
    weights = record_weights(data, 200, 0)
    assert (weights[:, 0] == weights[:, 1]).all() and (weights[:, 0] == weights[:, 4]).all()
    assert not (weights[:, 0] == weights[:, 2]).all()  # the lone image moves on its own
    assert weights[:, 0].max() <= 3  # three units (v, w, the lone image), three draws


def test_summary_intervals_widen_when_frames_are_blocked():
    rng = np.random.default_rng(2)
    offsets = np.repeat(rng.normal(0.0, 0.3, 10), 20)
    data = records([(float(np.clip(0.5 + o + rng.normal(0, 0.05), 0, 1)), 1.0)
                    for o in offsets])
    by_image = summarise(data, replicates=500, seed=0)
    for i, record in enumerate(data):
        record["block"] = f"video{i // 20}#0"
    by_video = summarise(data, replicates=500, seed=0)
    assert by_video["pck_all"] == by_image["pck_all"]
    width = {name: r["pck_all_hi"] - r["pck_all_lo"] for name, r in
             (("image", by_image), ("video", by_video))}
    assert width["video"] > 2 * width["image"]
