"""Zero-shot classifier conventions: template averaging, 100x logits, the NYU-D "others" max rule, views."""

from __future__ import annotations

from typing import Sequence

import pytest
import torch
import torch.nn.functional as F

import unialign
from unialign.eval.classnames import NYU_DEPTH_V2, NYU_GROUPS, NYU_OTHERS
from unialign.eval.zeroshot import (
    ZeroShotClassifier, class_embeddings, encode_views, expand_groups, group_max, mean_views,
)


class FakeTextModel(torch.nn.Module):
    """encode_text: a fixed random unit vector per distinct string (so results are hand-checkable)."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.dim = dim
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.table: dict[str, torch.Tensor] = {}

    def vec(self, text: str) -> torch.Tensor:
        if text not in self.table:
            g = torch.Generator().manual_seed(len(self.table) + 7)
            self.table[text] = torch.randn(self.dim, generator=g) * 3
        return self.table[text]

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        return torch.stack([self.vec(t) for t in texts])  # deliberately NOT normalised


def test_class_embeddings_normalise_average_renormalise() -> None:
    model = FakeTextModel()
    templates = ["a {}.", "the {c} here", "{}"]
    w = class_embeddings(model, ["red_car", "dog"], templates)
    for row, name in zip(w, ["red car", "dog"]):
        prompts = [t.replace("{c}", name).replace("{}", name) for t in templates]
        mean = torch.stack([F.normalize(model.vec(p), dim=0) for p in prompts]).mean(0)
        assert torch.allclose(row, F.normalize(mean, dim=0), atol=1e-6)


def test_logits_are_100_cosines() -> None:
    model = FakeTextModel()
    clf = ZeroShotClassifier.from_text(model, ["a", "b", "c"], ["{}"])
    x = F.normalize(torch.randn(4, 8), dim=-1)
    w = F.normalize(torch.stack([model.vec(n) for n in "abc"]), dim=-1)
    assert torch.allclose(clf.logits(x), 100 * x @ w.T, atol=1e-4)


def test_nyu_others_is_max_over_its_seven_members() -> None:
    names, owner = expand_groups(list(NYU_DEPTH_V2), NYU_GROUPS)
    assert len(names) == 9 + 7 and names[-7:] == list(NYU_OTHERS)
    assert owner.tolist() == list(range(9)) + [9] * 7
    # hand-made member logits: a sample whose best single name is "lobby" (an "others" member)
    member = torch.zeros(2, 16)
    member[0, :9] = torch.linspace(0.1, 0.5, 9)
    member[0, 9 + NYU_OTHERS.index("lobby")] = 0.7
    member[0, 9 + NYU_OTHERS.index("study")] = 0.6
    member[1, 3] = 0.9  # classroom beats every member of others
    member[1, 9:] = 0.2
    out = group_max(member, owner, 10)
    assert out.shape == (2, 10)
    assert out[0, 9] == pytest.approx(0.7) and out[0].argmax() == 9
    assert torch.equal(out[0, :9], member[0, :9])
    assert out[1].argmax() == 3 and out[1, 9] == pytest.approx(0.2)


def test_grouped_classifier_uses_the_member_prompts() -> None:
    model = FakeTextModel()
    clf = ZeroShotClassifier.from_text(model, ["kitchen", "others"], ["{}"], {"others": ["lobby", "study"]})
    x = F.normalize(model.vec("study").clone(), dim=0)[None]  # exactly the "study" text direction
    logits = clf.logits(x)
    assert logits.shape == (1, 2) and logits[0].argmax() == 1
    assert logits[0, 1] == pytest.approx(100.0, abs=1e-3)


def test_mean_views_average_then_renormalise() -> None:
    emb = F.normalize(torch.randn(5, 4), dim=-1)
    out = mean_views(emb, [2, 3])
    assert torch.allclose(out[0], F.normalize(emb[:2].mean(0), dim=0))
    assert torch.allclose(out[1], F.normalize(emb[2:].mean(0), dim=0))
    with pytest.raises(unialign.InputError):
        mean_views(emb, [2, 2])


def test_encode_views_on_tiny_model() -> None:
    model = unialign.create_model("unialign-test-tiny").eval()
    a, b = torch.randn(2, 3, 32, 32), torch.randn(1, 3, 32, 32)  # files with 2 and 1 views
    out = encode_views(model, "image", [a, b])
    with torch.no_grad():
        ref_a = F.normalize(model.encode("image", a).mean(0), dim=0)
        ref_b = model.encode("image", b)[0]
    assert out.shape == (2, 32)
    assert torch.allclose(out[0], ref_a, atol=1e-5) and torch.allclose(out[1], ref_b, atol=1e-5)
