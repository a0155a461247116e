"""Point-cloud grouping in batched, vectorised torch: farthest point sampling, kNN, gathering.

``pytorch3d.ops.sample_farthest_points`` is used as a fast path when it is importable and the start
index is 0 (the same deterministic rule); otherwise the pure-torch loop below runs (one vectorised
step per sampled centre, batched over clouds).
"""

from __future__ import annotations

import importlib.util

import torch
from torch import Tensor


def gather_points(points: Tensor, idx: Tensor) -> Tensor:
    """Select points (B, N, C) at indices idx (B, *S) -> (B, *S, C)."""
    b = points.shape[0]
    flat = idx.reshape(b, -1)
    out = points.gather(1, flat.unsqueeze(-1).expand(-1, -1, points.shape[-1]))
    return out.reshape(*idx.shape, points.shape[-1])


def farthest_point_sample(xyz: Tensor, m: int, start: int | Tensor = 0) -> Tensor:
    """Indices (B, m) of m centres chosen by iterative farthest point sampling from xyz (B, N, 3).

    Each step adds the point whose squared distance to the chosen set is largest (ties: lowest index),
    starting from index `start` (an int or a (B,) tensor). Needs m <= N.
    """
    b, n, _ = xyz.shape
    if m > n:
        raise ValueError(f"cannot sample {m} centres from {n} points")
    if isinstance(start, int) and start == 0 and importlib.util.find_spec("pytorch3d") is not None:
        from pytorch3d.ops import sample_farthest_points  # optional fast path

        return sample_farthest_points(xyz.float(), K=m, random_start_point=False)[1]
    xyz = xyz.float()
    idx = torch.empty(b, m, dtype=torch.long, device=xyz.device)
    cur = torch.as_tensor(start, dtype=torch.long, device=xyz.device).expand(b).clone()
    dist = torch.full((b, n), float("inf"), device=xyz.device)
    rows = torch.arange(b, device=xyz.device)
    for i in range(m):
        idx[:, i] = cur
        d = (xyz - xyz[rows, cur].unsqueeze(1)).pow(2).sum(-1)  # (B, N)
        dist = torch.minimum(dist, d)
        cur = dist.argmax(dim=1)
    return idx


def knn(query: Tensor, points: Tensor, k: int) -> Tensor:
    """Indices (B, M, k) of the k nearest points (B, N, 3) to each query (B, M, 3), nearest first."""
    if k > points.shape[1]:
        raise ValueError(f"k={k} exceeds the {points.shape[1]} points available")
    d = torch.cdist(query.float(), points.float())  # (B, M, N)
    return d.topk(k, dim=-1, largest=False, sorted=True).indices


def group_points(points: Tensor, num_groups: int, group_size: int) -> tuple[Tensor, Tensor]:
    """FPS + kNN grouping of points (B, N, C>=3): centres (B, G, 3) and neighbourhoods (B, G, K, C).

    Neighbourhood coordinates are relative to their centre; extra channels (e.g. RGB) are kept as is.
    """
    xyz = points[..., :3]
    centre_idx = farthest_point_sample(xyz, num_groups)
    centres = gather_points(xyz, centre_idx)  # (B, G, 3)
    neigh = gather_points(points, knn(centres, xyz, group_size))  # (B, G, K, C)
    rel = neigh[..., :3] - centres.unsqueeze(2)
    return centres, torch.cat([rel, neigh[..., 3:]], dim=-1)
