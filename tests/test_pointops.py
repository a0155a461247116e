"""Batched FPS / kNN / grouping against plain loop references written here."""

from __future__ import annotations

import pytest
import torch

from unialign.ops.pointops import farthest_point_sample, gather_points, group_points, knn


def fps_reference(xyz: torch.Tensor, m: int, start: int) -> list[int]:
    """Textbook farthest point sampling of one cloud (N, 3), with python loops; ties -> lowest index."""
    pts = xyz.double().tolist()
    chosen = [start]
    best = [float("inf")] * len(pts)
    for _ in range(m - 1):
        last = pts[chosen[-1]]
        for i, p in enumerate(pts):
            d = sum((a - b) ** 2 for a, b in zip(p, last))
            best[i] = min(best[i], d)
        far = max(range(len(pts)), key=lambda i: (best[i], -i))  # largest distance, lowest index on ties
        chosen.append(far)
    return chosen


@pytest.mark.parametrize("start", [0, 5])
def test_fps_matches_loop_reference_batched(start: int) -> None:
    g = torch.Generator().manual_seed(3)
    xyz = torch.rand(3, 60, 3, generator=g)
    idx = farthest_point_sample(xyz, 12, start)
    assert idx.shape == (3, 12)
    for b in range(3):
        assert idx[b].tolist() == fps_reference(xyz[b], 12, start)


def test_fps_per_cloud_start_tensor() -> None:
    g = torch.Generator().manual_seed(4)
    xyz = torch.rand(2, 40, 3, generator=g)
    starts = torch.tensor([7, 31])
    idx = farthest_point_sample(xyz, 8, starts)
    for b in range(2):
        assert idx[b].tolist() == fps_reference(xyz[b], 8, int(starts[b]))


def test_fps_picks_distinct_points_and_spreads_on_a_grid() -> None:
    # 4 x 4 grid on a plane: the first FPS steps from a corner must be the other corners.
    ax = torch.arange(4.0)
    grid = torch.stack(torch.meshgrid(ax, ax, indexing="ij"), -1).reshape(-1, 2)
    xyz = torch.cat([grid, torch.zeros(16, 1)], dim=1).unsqueeze(0)
    idx = farthest_point_sample(xyz, 16, 0)[0].tolist()
    assert sorted(idx) == list(range(16))
    assert set(idx[:4]) == {0, 3, 12, 15}
    with pytest.raises(ValueError):
        farthest_point_sample(xyz, 17)


def test_knn_matches_brute_force() -> None:
    g = torch.Generator().manual_seed(5)
    pts = torch.rand(2, 50, 3, generator=g)
    query = torch.rand(2, 7, 3, generator=g)
    idx = knn(query, pts, 6)
    assert idx.shape == (2, 7, 6)
    for b in range(2):
        for q in range(7):
            d = [float(((query[b, q] - p) ** 2).sum()) for p in pts[b]]
            assert idx[b, q].tolist() == sorted(range(50), key=lambda i: d[i])[:6]
    with pytest.raises(ValueError):
        knn(query, pts, 51)


def test_knn_with_ties_returns_the_right_distances() -> None:
    # pointops documents no tie order, so with equidistant points we check the multiset of distances
    # (and that the k nearest are all returned when the tie does not straddle the cut-off).
    pts = torch.tensor([[[1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0, -1.0, 0], [3.0, 0, 0], [0, 0, 0.5]]])
    query = torch.zeros(1, 1, 3)
    idx = knn(query, pts, 5)[0, 0]
    assert int(idx[0]) == 5  # the unique nearest point comes first
    assert set(idx[1:].tolist()) == {0, 1, 2, 3}
    idx3 = knn(query, pts, 3)[0, 0]
    dists = pts[0, idx3].norm(dim=-1)
    torch.testing.assert_close(dists, torch.tensor([0.5, 1.0, 1.0]))
    assert len(set(idx3.tolist())) == 3


def test_gather_points_shapes() -> None:
    pts = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    idx = torch.tensor([[[0, 4]], [[1, 1]]])
    out = gather_points(pts, idx)
    assert out.shape == (2, 1, 2, 3)
    assert torch.equal(out[0, 0, 1], pts[0, 4]) and torch.equal(out[1, 0, 0], pts[1, 1])


def test_group_points_are_centred_on_their_centres() -> None:
    g = torch.Generator().manual_seed(6)
    pts = torch.cat([torch.rand(2, 64, 3, generator=g), torch.rand(2, 64, 3, generator=g)], dim=-1)  # xyz+rgb
    centres, groups = group_points(pts, 8, 5)
    assert centres.shape == (2, 8, 3) and groups.shape == (2, 8, 5, 6)
    # Each group's nearest member is its centre itself (distance 0), so the first relative xyz is 0.
    torch.testing.assert_close(groups[:, :, 0, :3], torch.zeros(2, 8, 3))
    # Relative coordinates + centre give back real points; colours are passed through unchanged.
    idx = farthest_point_sample(pts[..., :3], 8)
    torch.testing.assert_close(centres, gather_points(pts[..., :3], idx))
    nn_idx = knn(centres, pts[..., :3], 5)
    absolute = groups[..., :3] + centres.unsqueeze(2)
    torch.testing.assert_close(absolute, gather_points(pts[..., :3], nn_idx))
    torch.testing.assert_close(groups[..., 3:], gather_points(pts[..., 3:], nn_idx))
    # Neighbourhoods are local: every member lies within the group's kNN radius of its centre.
    assert float(groups[..., :3].norm(dim=-1).max()) < float(torch.cdist(centres, pts[..., :3]).max())
