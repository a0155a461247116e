"""MoE-LoRA maths (Eq. 5-9): folded experts equal the per-expert loop; routing and init behave."""

from __future__ import annotations

import pytest
import torch

from unialign.config import MoEConfig
from unialign.moe.moe_lora import MoELoRA

MODS = ["image", "audio", "point"]


def _moe(**kw) -> MoELoRA:
    moe = MoELoRA(16, MODS, MoEConfig(**kw))
    with torch.no_grad():
        for p in moe.lora_B.values():
            p.normal_()  # B = 0 at init would make every comparison trivially zero
    return moe


@pytest.mark.parametrize(
    "kw",
    [
        dict(experts_per_modality=2, top_k=2),
        dict(experts_per_modality=2, top_k=1),
        dict(experts_per_modality=1, top_k=1),
        dict(experts_per_modality=3, top_k=2, renormalize=True),
        dict(experts_per_modality=2, top_k=2, routing="global"),
        dict(experts_per_modality=2, top_k=3, routing="global"),
    ],
)
def test_folded_experts_equal_loop_over_experts(kw) -> None:
    moe = _moe(rank=4, alpha=32, **kw)
    h = torch.randn(2, 5, 16)
    for m in MODS:
        assert torch.allclose(moe(h, m), moe.forward_loop(h, m), atol=1e-5)


def test_equation_9_by_hand_for_one_token() -> None:
    """Two experts, top-2: y = sum_i softmax(W h)_i * (alpha/r) * B_i A_i h, written out explicitly."""
    moe = _moe(experts_per_modality=2, top_k=2, rank=4, alpha=32)
    h = torch.randn(16)
    a, b, w = moe.lora_A["audio"], moe.lora_B["audio"], moe.router["audio"]
    g = torch.softmax(h @ w, dim=0)
    expected = sum(g[i] * 8.0 * (h @ a[:, 4 * i : 4 * i + 4]) @ b[4 * i : 4 * i + 4] for i in range(2))
    assert torch.allclose(moe(h.view(1, 1, 16), "audio").view(16), expected, atol=1e-5)


def test_top1_keeps_one_expert_and_router_still_learns() -> None:
    moe = _moe(experts_per_modality=2, top_k=1, rank=4)
    h = torch.randn(3, 7, 16)
    g = moe.gates(h, "image")
    assert ((g > 0).sum(-1) == 1).all()
    moe(h, "image").sum().backward()
    assert moe.router["image"].grad.abs().sum() > 0


def test_grouped_routing_touches_only_its_own_set() -> None:
    moe = _moe()
    moe(torch.randn(2, 3, 16), "audio").sum().backward()
    for m in MODS:
        touched = moe.lora_A[m].grad is not None
        assert touched == (m == "audio")


def test_global_routing_scores_all_experts() -> None:
    moe = _moe(routing="global", experts_per_modality=2, top_k=2)
    assert moe.router["image"].shape == (16, 2 * len(MODS))
    moe(torch.randn(2, 3, 16), "image").sum().backward()
    assert all(moe.lora_B[m].grad is not None for m in MODS)


def test_untrained_layer_outputs_zero_and_clip_init_is_orthonormal() -> None:
    moe = MoELoRA(16, MODS, MoEConfig(init="clip"))
    w = torch.randn(64, 16)
    moe.init_from_ffn(w)
    assert torch.equal(moe(torch.randn(2, 3, 16), "image"), torch.zeros(2, 3, 16))
    a = moe.lora_A["image"] * 3**0.5
    assert torch.allclose(a.t() @ a, torch.eye(8), atol=1e-5)
    _, _, vh = torch.linalg.svd(w, full_matrices=False)
    assert torch.allclose(a[:, 0].abs(), vh[0].abs(), atol=1e-5)  # first expert = top singular direction


def test_invalid_top_k_is_rejected() -> None:
    from unialign.errors import ConfigError

    with pytest.raises(ConfigError, match="top_k"):
        MoEConfig(experts_per_modality=2, top_k=3)
