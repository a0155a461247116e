"""Losses of Eq. 10-16 against hand-computed values and an independent float64 numpy implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unialign.errors import ConfigError, InputError
from unialign.losses import (
    LossWeights,
    anchor_distil_loss,
    kl_div,
    model_distil_loss,
    nce_loss,
    similarity,
    soft_bind_all,
    soft_bind_loss,
    soft_bind_term,
    total_loss,
)

# ---------------------------------------------------------------- independent reference (numpy, loops)


def unit(n: int, e: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, e, generator=g, dtype=torch.float64), dim=-1)


def np_sim(a, b, tau: float) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.zeros((len(a), len(b)))
    for i in range(len(a)):
        logits = [float(a[i] @ b[j]) / tau for j in range(len(b))]
        m = max(logits)
        ex = [math.exp(v - m) for v in logits]
        out[i] = [v / sum(ex) for v in ex]
    return out


def np_kl(target: np.ndarray, student: np.ndarray, direction: str) -> float:
    p, q = (target, student) if direction == "target_student" else (student, target)
    rows = [sum(p[i, j] * math.log(p[i, j] / q[i, j]) for j in range(p.shape[1]) if p[i, j] > 0) for i in range(len(p))]
    return sum(rows) / len(rows)


def np_soft_ce(logits: np.ndarray, target: np.ndarray) -> float:
    total = 0.0
    for i in range(len(logits)):
        m = logits[i].max()
        lse = m + math.log(sum(math.exp(v - m) for v in logits[i]))
        total += -sum(target[i, j] * (logits[i, j] - lse) for j in range(logits.shape[1]))
    return total / len(logits)


DIRS = ["target_student", "student_target"]

# ---------------------------------------------------------------- Eq. 10 similarity and KL


@pytest.mark.parametrize("tau", [1.0, 0.5, 0.01])
def test_similarity_matches_reference(tau: float) -> None:
    a, b = unit(3, 5, 1), unit(4, 5, 2)
    s = similarity(a, b, tau)
    assert s.shape == (3, 4)
    np.testing.assert_allclose(s.numpy(), np_sim(a, b, tau), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s.sum(-1), torch.ones(3, dtype=torch.float64))


def test_similarity_normalize_option() -> None:
    a, b = unit(3, 5, 1), unit(4, 5, 2)
    torch.testing.assert_close(similarity(3.0 * a, 0.2 * b, 1.0), similarity(a, b, 1.0))
    raw = similarity(3.0 * a, b, 1.0, normalize=False)
    np.testing.assert_allclose(raw.numpy(), np_sim(3.0 * a, b, 1.0), rtol=1e-10)
    with pytest.raises(ConfigError):
        similarity(a, b, 0.0)
    with pytest.raises(InputError):
        similarity(a, unit(4, 6, 3))


def test_kl_div_hand_computed_both_directions() -> None:
    p = torch.tensor([[0.5, 0.5], [0.25, 0.75]], dtype=torch.float64)  # targets
    q = torch.tensor([[0.9, 0.1], [0.25, 0.75]], dtype=torch.float64)  # students; row 2 equals its target
    # row 1: KL(p||q) = .5 ln(.5/.9) + .5 ln(.5/.1) = 0.5108256; KL(q||p) = .9 ln(1.8) + .1 ln(.2) = 0.3680642
    kl_pq = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    kl_qp = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert kl_pq == pytest.approx(0.5108256238, abs=1e-9) and kl_qp == pytest.approx(0.3680642071, abs=1e-9)
    assert kl_div(p, q).item() == pytest.approx(kl_pq / 2, abs=1e-12)  # default: KL(target || student)
    assert kl_div(p, q, "target_student").item() == pytest.approx(kl_pq / 2, abs=1e-12)
    assert kl_div(p, q, "student_target").item() == pytest.approx(kl_qp / 2, abs=1e-12)
    for d in DIRS:  # log-space input gives the same number
        assert kl_div(p.log(), q.log(), d, log_input=True).item() == pytest.approx(kl_div(p, q, d).item(), abs=1e-12)
    assert kl_div(p, p).item() == 0.0
    with pytest.raises(ConfigError):
        kl_div(p, q, "forward")  # type: ignore[arg-type]


def test_kl_div_zero_target_entries_follow_0log0() -> None:
    p = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    q = torch.tensor([[0.8, 0.2]], dtype=torch.float64)
    assert kl_div(p, q).item() == pytest.approx(math.log(1 / 0.8), abs=1e-12)
    assert math.isinf(kl_div(p, q, "student_target").item())  # student mass where the target has none


# ---------------------------------------------------------------- L_NCE


def test_nce_matches_clip_reference() -> None:
    x, a = unit(5, 8, 3), unit(5, 8, 4)
    scale = 14.0
    logits = scale * x.numpy() @ a.numpy().T
    eye = np.eye(5)
    ref = (np_soft_ce(logits, eye) + np_soft_ce(logits.T, eye)) / 2
    assert nce_loss(x, a, scale)["nce_loss"].item() == pytest.approx(ref, rel=1e-10)
    # a tensor logit scale, un-normalised inputs with normalize=True give the same value
    assert nce_loss(2 * x, 3 * a, torch.tensor(scale))["nce_loss"].item() == pytest.approx(ref, rel=1e-10)
    # all-distinct labels reduce to CLIP exactly
    assert nce_loss(x, a, scale, torch.arange(5))["nce_loss"].item() == pytest.approx(ref, rel=1e-10)


def test_nce_identical_pairs_huge_scale_is_zero() -> None:
    x = torch.eye(4, 6, dtype=torch.float64)
    assert nce_loss(x, x.clone(), 1000.0)["nce_loss"].item() < 1e-12


def test_nce_soft_targets_with_labels_match_reference() -> None:
    x, a = unit(6, 8, 5), unit(6, 8, 6)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    same = (labels[:, None] == labels[None, :]).double().numpy()
    soft = same / same.sum(1, keepdims=True)  # row 0: 1/3 on columns 0, 2, 5
    logits = 10.0 * x.numpy() @ a.numpy().T
    ref = (np_soft_ce(logits, soft) + np_soft_ce(logits.T, soft.T)) / 2
    assert nce_loss(x, a, 10.0, labels)["nce_loss"].item() == pytest.approx(ref, rel=1e-10)


def test_nce_labels_do_not_push_same_label_pairs_apart() -> None:
    # samples 0 and 1 share a label; each lies halfway between the two same-label anchors
    e = torch.eye(3, dtype=torch.float64)
    a = e.clone()
    x0 = (e[0] + e[1]) / math.sqrt(2)
    x = torch.stack([x0, x0, e[2]]).requires_grad_(True)
    labels = torch.tensor([7, 7, 3])
    with_labels = nce_loss(x, a, 100.0, labels)["nce_loss"]
    # the soft-target loss is at its minimum, the target entropy 2/3 * ln 2, with a zero gradient
    assert with_labels.item() == pytest.approx(2 / 3 * math.log(2), abs=1e-9)
    (g,) = torch.autograd.grad(with_labels, x)
    assert g.abs().max().item() < 1e-9
    # plain CLIP treats anchor 1 as a negative of sample 0 and pulls the samples apart
    (g_clip,) = torch.autograd.grad(nce_loss(x, a, 100.0)["nce_loss"], x)
    assert g_clip[0].norm().item() > 1.0


# ---------------------------------------------------------------- Eq. 11 soft binding


def _soft_bind_reference(x1, y1, labels2, x2, y2, labels1, tau, direction) -> float:
    return np_kl(np_sim(y1, labels2, tau), np_sim(x1, labels2, tau), direction) + np_kl(
        np_sim(y2, labels1, tau), np_sim(x2, labels1, tau), direction
    )


@pytest.mark.parametrize("direction", DIRS)
@pytest.mark.parametrize("tau", [1.0, 0.1])
def test_soft_bind_matches_reference(direction: str, tau: float) -> None:
    x1, y1, labels1 = unit(3, 6, 10), unit(3, 6, 11), unit(4, 6, 12)
    x2, y2, labels2 = unit(2, 6, 13), unit(2, 6, 14), unit(5, 6, 15)
    got = soft_bind_loss(x1, y1, labels2, x2, y2, labels1, tau, direction)["soft_bind_loss"].item()
    ref = _soft_bind_reference(x1, y1, labels2, x2, y2, labels1, tau, direction)
    assert got == pytest.approx(ref, rel=1e-9)


def test_soft_bind_direction_is_pinned() -> None:
    args = (unit(3, 6, 10), unit(3, 6, 11), unit(5, 6, 15), unit(2, 6, 13), unit(2, 6, 14), unit(4, 6, 12))
    a = soft_bind_loss(*args, 0.1, "target_student")["soft_bind_loss"].item()
    b = soft_bind_loss(*args, 0.1, "student_target")["soft_bind_loss"].item()
    assert abs(a - b) > 1e-3


def test_soft_bind_zero_when_student_equals_target_and_grads() -> None:
    y1, y2 = unit(3, 6, 11), unit(2, 6, 14)
    labels1, labels2 = unit(4, 6, 12), unit(5, 6, 15)
    zero = soft_bind_loss(y1.clone(), y1, labels2, y2.clone(), y2, labels1)["soft_bind_loss"]
    assert zero.abs().item() < 1e-12
    x1, x2 = unit(3, 6, 10).requires_grad_(True), unit(2, 6, 13).requires_grad_(True)
    y1.requires_grad_(True)
    y2.requires_grad_(True)
    soft_bind_loss(x1, y1, labels2, x2, y2, labels1, 0.1)["soft_bind_loss"].backward()
    assert x1.grad is not None and x1.grad.abs().sum() > 0
    assert x2.grad is not None and x2.grad.abs().sum() > 0
    assert y1.grad is None and y2.grad is None  # the label-text targets are detached


@pytest.mark.parametrize("direction", DIRS)
def test_soft_bind_term_is_one_half_of_eq11(direction: str) -> None:
    x1, y1, labels1 = unit(3, 6, 10), unit(3, 6, 11), unit(4, 6, 12)
    x2, y2, labels2 = unit(2, 6, 13), unit(2, 6, 14), unit(5, 6, 15)
    half = soft_bind_term(x1, y1, labels2, 0.1, direction).item()
    assert half == pytest.approx(np_kl(np_sim(y1, labels2, 0.1), np_sim(x1, labels2, 0.1), direction), rel=1e-9)
    both = half + soft_bind_term(x2, y2, labels1, 0.1, direction).item()
    assert both == pytest.approx(soft_bind_loss(x1, y1, labels2, x2, y2, labels1, 0.1, direction)["soft_bind_loss"].item())


def test_soft_bind_term_stays_finite_where_probabilities_underflow() -> None:
    # float32, tau 0.01: the student's probability of the target's class underflows to 0
    # (exp(-160)), so KL in probability space is inf; the log-space form gives the exact finite value.
    labels = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    y = torch.tensor([[1.0, 0.0]])  # target: class 0, probability ~1
    x = torch.tensor([[-0.8, 0.6]], requires_grad=True)  # student: class 1, log q_0 = -80 - 80
    prob_space = kl_div(similarity(y, labels, 0.01), similarity(x, labels, 0.01))
    assert not torch.isfinite(prob_space)
    got = soft_bind_term(x, y, labels, 0.01)
    assert torch.isfinite(got) and got.item() == pytest.approx(160.0, rel=1e-4)
    got.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(InputError, match="own label text"):
        soft_bind_term(unit(3, 2, 1), unit(2, 2, 2), labels)


def test_soft_bind_all_averages_pairs_of_different_modalities() -> None:
    def ds(seed: int, b: int, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return unit(b, 6, seed), unit(b, 6, seed + 1), unit(n, 6, seed + 2)

    samples = {"esc": ds(20, 3, 4), "ucf": ds(30, 2, 5), "vgg": ds(40, 4, 3)}
    modalities = {"esc": "audio", "ucf": "video", "vgg": "audio"}
    got = soft_bind_all(samples, modalities, 0.1)["soft_bind_loss"].item()
    pairs = [("esc", "ucf"), ("ucf", "vgg")]  # esc-vgg are both audio: skipped
    ref = sum(
        _soft_bind_reference(*samples[a][:2], samples[b][2], *samples[b][:2], samples[a][2], 0.1, "target_student")
        for a, b in pairs
    ) / len(pairs)
    assert got == pytest.approx(ref, rel=1e-9)
    same = soft_bind_all({"esc": samples["esc"], "vgg": samples["vgg"]}, modalities)["soft_bind_loss"]
    assert same.item() == 0.0
    with pytest.raises(InputError):
        soft_bind_all(samples, {"esc": "audio"})


# ---------------------------------------------------------------- Eq. 12 anchor distillation


@pytest.mark.parametrize("direction", DIRS)
def test_anchor_distil_matches_reference(direction: str) -> None:
    ext, text, image = unit(4, 6, 50), unit(4, 6, 51), unit(4, 6, 52)
    got = anchor_distil_loss(ext, text, image, 0.2, direction)["anchor_distil_loss"].item()
    ref = np_kl(np_sim(image, text, 0.2), np_sim(ext, text, 0.2), direction) + np_kl(
        np_sim(text, image, 0.2), np_sim(ext, image, 0.2), direction
    )
    assert got == pytest.approx(ref, rel=1e-9)


def test_anchor_distil_zero_and_detached_targets() -> None:
    text, image = unit(4, 6, 51), unit(4, 6, 52)
    # ext == image makes the first term zero; the second compares S(image, image) with S(text, image)
    first_only = anchor_distil_loss(image.clone(), text, image, 0.2)["anchor_distil_loss"].item()
    assert first_only == pytest.approx(np_kl(np_sim(text, image, 0.2), np_sim(image, image, 0.2), "target_student"))
    # gradients equal those of an explicit implementation whose targets are detached
    leaves = [t.clone().requires_grad_(True) for t in (unit(4, 6, 50), text, image)]
    anchor_distil_loss(*leaves, 0.2, normalize=False)["anchor_distil_loss"].backward()  # raw Jacobian
    ext, txt, img = [t.detach().clone().requires_grad_(True) for t in leaves]

    def log_s(a, b):
        return torch.log_softmax(a @ b.T / 0.2, -1)

    def kl(log_p, log_q):
        return (log_p.exp() * (log_p - log_q)).sum(-1).mean()

    ref = kl(log_s(img, txt).detach(), log_s(ext, txt)) + kl(log_s(txt, img).detach(), log_s(ext, img))
    ref.backward()
    for got, want in zip(leaves, (ext, txt, img)):
        torch.testing.assert_close(got.grad, want.grad)
    assert leaves[0].grad.abs().sum() > 0


# ---------------------------------------------------------------- Eq. 13-15 model distillation


def _model_args(seed: int = 60) -> dict[str, torch.Tensor]:
    return {
        "student_proj": torch.randn(3, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)),
        "teacher_feat": torch.randn(3, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1)),
        "student_ext": unit(3, 6, seed + 2),
        "student_anchor": unit(3, 6, seed + 3),
        "teacher_ext": unit(3, 5, seed + 4),  # the teacher has its own width
        "teacher_anchor": unit(3, 5, seed + 5),
    }


def _modal_reference(k: dict[str, torch.Tensor], tau_s: float, tau_t: float, direction: str) -> float:
    """Eq. 14: KL(S(s_ext, s_anc) vs S(t_ext, t_anc)) + KL(S(s_anc, s_ext) vs S(t_anc, t_ext))."""
    s_ext, s_anc, t_ext, t_anc = (k[n] for n in ("student_ext", "student_anchor", "teacher_ext", "teacher_anchor"))
    return np_kl(np_sim(t_ext, t_anc, tau_t), np_sim(s_ext, s_anc, tau_s), direction) + np_kl(
        np_sim(t_anc, t_ext, tau_t), np_sim(s_anc, s_ext, tau_s), direction
    )


@pytest.mark.parametrize("direction", DIRS)
def test_model_distil_matches_reference(direction: str) -> None:
    k = _model_args()
    out = model_distil_loss(**k, lam=2000.0, temperature=0.1, direction=direction)
    assert set(out) == {"feat_align_loss", "modal_align_loss"}
    s = k["student_proj"].numpy() / np.linalg.norm(k["student_proj"].numpy(), axis=1, keepdims=True)
    t = k["teacher_feat"].numpy() / np.linalg.norm(k["teacher_feat"].numpy(), axis=1, keepdims=True)
    feat = 2000.0 * sum(float(np.sum((t[b] - s[b]) ** 2)) / 7 for b in range(3)) / 3  # lam * mean_b ||.||^2 / T
    assert out["feat_align_loss"].item() == pytest.approx(feat, rel=1e-10)
    assert out["modal_align_loss"].item() == pytest.approx(_modal_reference(k, 0.1, 0.1, direction), rel=1e-9)


def test_model_distil_options() -> None:
    k = _model_args()
    raw = model_distil_loss(**k, lam=3.0, normalize_features=False)["feat_align_loss"].item()
    diff = (k["student_proj"] - k["teacher_feat"]).numpy()
    assert raw == pytest.approx(3.0 * float((diff**2).mean()), rel=1e-10)
    hot = model_distil_loss(**k, temperature=0.1, teacher_temperature=0.5)["modal_align_loss"].item()
    assert hot == pytest.approx(_modal_reference(k, 0.1, 0.5, "target_student"), rel=1e-9)
    with pytest.raises(InputError):
        model_distil_loss(**{**k, "teacher_feat": k["teacher_feat"][:, :5]})


def test_model_distil_zero_when_student_equals_teacher_and_grads() -> None:
    k = _model_args()
    same = dict(k, student_proj=k["teacher_feat"].clone(), student_ext=k["teacher_ext"].clone(),
                student_anchor=k["teacher_anchor"].clone())
    out = model_distil_loss(**same)
    assert out["feat_align_loss"].item() < 1e-12 and abs(out["modal_align_loss"].item()) < 1e-12
    leaves = {name: t.clone().requires_grad_(True) for name, t in k.items()}
    out = model_distil_loss(**leaves, temperature=0.1)
    (out["feat_align_loss"] + out["modal_align_loss"]).backward()
    for name in ("student_proj", "student_ext", "student_anchor"):
        assert leaves[name].grad is not None and leaves[name].grad.abs().sum() > 0, name
    for name in ("teacher_feat", "teacher_ext", "teacher_anchor"):
        assert leaves[name].grad is None, name


# ---------------------------------------------------------------- Eq. 16 total


def test_total_loss_weights_and_skips() -> None:
    terms = {
        "nce_loss": torch.tensor(1.0),
        "soft_bind_loss": torch.tensor(2.0),
        "anchor_distil_loss": torch.tensor(3.0),
        "feat_align_loss": torch.tensor(4.0),
        "modal_align_loss": torch.tensor(5.0),
    }
    assert total_loss(terms).item() == pytest.approx(15.0)  # all alphas default to 1
    assert total_loss(terms, LossWeights()).item() == pytest.approx(15.0)
    w = {"soft_bind": 0.5, "anchor_distil": 2.0, "model_distil": 0.1}
    assert total_loss(terms, w).item() == pytest.approx(1 + 1 + 6 + 0.9)
    # a zero weight skips the term entirely, even a NaN one; absent terms are skipped too
    nan_terms = dict(terms, soft_bind_loss=torch.tensor(float("nan")))
    assert total_loss(nan_terms, LossWeights(soft_bind=0.0)).item() == pytest.approx(13.0)
    assert total_loss({"nce_loss": terms["nce_loss"]}).item() == pytest.approx(1.0)
    assert total_loss(terms, LossWeights(soft_bind=0, anchor_distil=0, model_distil=0)).item() == pytest.approx(1.0)
    with pytest.raises(ConfigError):
        total_loss(terms, {"softbind": 1.0})
    with pytest.raises(InputError):
        total_loss({"nce": torch.tensor(1.0)})
    with pytest.raises(InputError):
        total_loss({"soft_bind_loss": torch.tensor(1.0)}, {"soft_bind": 0.0})


def test_total_loss_gradient_scaled_by_weight() -> None:
    x = torch.tensor(2.0, requires_grad=True)
    total_loss({"nce_loss": x * 1.0, "feat_align_loss": x * x}, {"model_distil": 0.25}).backward()
    assert x.grad.item() == pytest.approx(1.0 + 0.25 * 4.0)


def test_loss_weights_validation() -> None:
    lw = LossWeights()
    assert (lw.lam, lw.temperature, lw.direction) == (2000.0, 0.01, "target_student")
    assert lw.weights() == {"nce": 1.0, "soft_bind": 1.0, "anchor_distil": 1.0, "model_distil": 1.0}
    with pytest.raises(ConfigError):
        LossWeights(soft_bind=-1.0)
    with pytest.raises(ConfigError):
        LossWeights(temperature=0.0)
    with pytest.raises(ConfigError):
        LossWeights(direction="forward")  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        lw.nce = 2.0  # type: ignore[misc]


def test_end_to_end_float32_backward() -> None:
    """All terms on one small float32 batch: finite total, gradient reaches the student embeddings."""
    torch.manual_seed(0)
    ext = torch.randn(4, 8, requires_grad=True)
    text, image = torch.randn(4, 8), torch.randn(4, 8)
    terms = {
        **nce_loss(ext, text, 100.0),
        **anchor_distil_loss(ext, text, image),
        **soft_bind_loss(ext, text, torch.randn(5, 8), torch.randn(3, 8), torch.randn(3, 8), torch.randn(6, 8)),
        **model_distil_loss(torch.randn(4, 5, requires_grad=True), torch.randn(4, 5), ext, text,
                            torch.randn(4, 7), torch.randn(4, 7)),
    }
    total = total_loss(terms, LossWeights())
    assert torch.isfinite(total)
    total.backward()
    assert ext.grad is not None and torch.isfinite(ext.grad).all() and ext.grad.abs().sum() > 0
