"""Alignment and distillation losses of paper §3.2: Eq. 10 (similarity), 11 (soft binding), 12 (anchor
distillation) and 13-15 (distillation from partial-modal foundation models).

Conventions shared by every function here:

* Embeddings are ``(B, E)`` rows, L2-normalised by the caller. With ``normalize=True`` (default) they are
  re-normalised along the last dimension, a no-op on unit vectors that makes the loss safe on raw features.
* ``S(a, b)`` (Eq. 10) is a row-wise softmax of ``a @ b.T / temperature``. The paper writes a bare dot
  product; we follow CLIP practice and divide by ``temperature`` (default 0.01 = 1 / CLIP's logit scale 100).
  ``temperature=1.0`` is the literal equation.
* Every KL term compares a *student* distribution (the side that learns) with a detached *target*.
  ``direction="target_student"`` (default) computes KL(target || student) = sum target * (log target -
  log student), the knowledge-distillation convention of CLIP-KD (paper ref. [99]) and of Hinton et al.;
  ``direction="student_target"`` computes KL(student || target), the literal order ``KL(S(student) |
  S(target))`` of Eq. 11, 12 and 14. KL values are summed over the distribution and averaged over rows.
* Targets are detached; the student side keeps its whole graph (also through the anchors it is compared
  with: detach those yourself if they must not learn from a term).
* Each loss returns a dict of named scalar tensors whose keys end in ``_loss``.
"""

from __future__ import annotations

import itertools
from typing import Literal, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from unialign.errors import ConfigError, InputError

KLDirection = Literal["target_student", "student_target"]
DIRECTIONS: tuple[str, ...] = ("target_student", "student_target")


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ConfigError(f"KL direction must be one of {DIRECTIONS}, got {direction!r}")


def _check_temperature(temperature: float | Tensor) -> None:
    if not isinstance(temperature, Tensor) and not temperature > 0:
        raise ConfigError(f"temperature must be > 0, got {temperature!r}")


def _check_rows(name: str, t: Tensor, width: int | None = None) -> None:
    if t.ndim != 2:
        raise InputError(f"{name} must be a (rows, E) matrix of embeddings, got shape {tuple(t.shape)}")
    if width is not None and t.shape[1] != width:
        raise InputError(f"{name} has width {t.shape[1]}, expected {width} (same embedding space)")


def _maybe_normalize(t: Tensor, normalize: bool) -> Tensor:
    return F.normalize(t, dim=-1) if normalize else t


def _log_similarity(a: Tensor, b: Tensor, temperature: float | Tensor) -> Tensor:
    """log S(a, b): row-wise log-softmax of ``a @ b.T / temperature``; (A, E), (N, E) -> (A, N)."""
    return torch.log_softmax(a @ b.T / temperature, dim=-1)


def similarity(a: Tensor, b: Tensor, temperature: float | Tensor = 0.01, *, normalize: bool = True) -> Tensor:
    """Eq. 10: ``S(a, b)_ij = exp(a_i . b_j / tau) / sum_n exp(a_i . b_n / tau)``.

    Args:
        a: ``(A, E)`` query embeddings (rows of the result).
        b: ``(N, E)`` key embeddings (the softmax runs over these N columns).
        temperature: tau. Default 0.01 = 1 / CLIP's logit scale (CLIP practice); 1.0 is the paper's
            literal Eq. 10 without temperature. A tensor (e.g. ``1 / logit_scale``) is accepted.
        normalize: re-normalise ``a`` and ``b`` to unit L2 norm along the last dimension first.

    Returns:
        ``(A, N)`` matrix whose rows are probability distributions.
    """
    _check_temperature(temperature)
    _check_rows("a", a)
    _check_rows("b", b, a.shape[1])
    a, b = _maybe_normalize(a, normalize), _maybe_normalize(b, normalize)
    return torch.softmax(a @ b.T / temperature, dim=-1)


def kl_div(
    p_target: Tensor, q_student: Tensor, direction: KLDirection = "target_student", *, log_input: bool = False
) -> Tensor:
    """KL divergence between row distributions, averaged over rows (used by Eq. 11, 12 and 14).

    Args:
        p_target: ``(..., N)`` target distributions (rows sum to 1).
        q_student: ``(..., N)`` student distributions, same shape.
        direction: ``"target_student"`` (default): KL(target || student) = sum p (log p - log q), the
            distillation convention of CLIP-KD [99]; ``"student_target"``: KL(student || target) =
            sum q (log q - log p), the literal order written in the paper.
        log_input: both inputs are log-probabilities (numerically safer; what the losses here pass).

    Returns:
        Scalar: the per-row KL summed over the last dimension, then the mean over all rows. In
        probability space, zero entries follow the ``0 log 0 = 0`` convention.
    """
    _check_direction(direction)
    if p_target.shape != q_student.shape:
        raise InputError(f"p_target {tuple(p_target.shape)} and q_student {tuple(q_student.shape)} differ")
    first, second = (p_target, q_student) if direction == "target_student" else (q_student, p_target)
    if log_input:
        terms = first.exp() * (first - second)
        per_row = terms.masked_fill(first == float("-inf"), 0.0).sum(dim=-1)  # 0 log 0 = 0
    else:
        per_row = (torch.xlogy(first, first) - torch.xlogy(first, second)).sum(dim=-1)
    return per_row.mean()


def _distil_term(
    student: tuple[Tensor, Tensor],
    target: tuple[Tensor, Tensor],
    temperature: float | Tensor,
    direction: KLDirection,
    target_temperature: float | Tensor | None = None,
) -> Tensor:
    """KL between S(*student) and the detached S(*target), inputs already normalised."""
    log_q = _log_similarity(*student, temperature)
    with torch.no_grad():
        log_p = _log_similarity(*target, temperature if target_temperature is None else target_temperature)
    return kl_div(log_p, log_q, direction, log_input=True)


def soft_bind_term(
    x: Tensor, y: Tensor, labels: Tensor, temperature: float | Tensor = 0.01,
    direction: KLDirection = "target_student", *, normalize: bool = True,
) -> Tensor:
    """One half of Eq. 11: ``KL(S(y, labels) vs S(x, labels))``, the target ``S(y, .)`` detached.

    Computed from log-softmax (Eq. 10 in log space), so a sharp target against a student whose
    probability underflows stays finite, unlike the probability-space form.

    Args:
        x: ``(B, E)`` samples of one modality.
        y: ``(B, E)`` text embeddings of each sample's own class label.
        labels: ``(N, E)`` text embeddings of another dataset's class labels.
        temperature, direction, normalize: see :func:`similarity` and :func:`kl_div`.

    Returns:
        Scalar: the KL averaged over the B samples.
    """
    _check_temperature(temperature)
    _check_direction(direction)
    _check_rows("x", x)
    _check_rows("y", y, x.shape[1])
    _check_rows("labels", labels, x.shape[1])
    if y.shape[0] != x.shape[0]:
        raise InputError(f"each sample needs its own label text: x {tuple(x.shape)} vs y {tuple(y.shape)}")
    return _soft_bind_half(x, y, labels, temperature, direction, normalize)


def _soft_bind_half(x: Tensor, y: Tensor, labels: Tensor, temperature: float | Tensor, direction: KLDirection,
                    normalize: bool) -> Tensor:
    """KL(S(y, labels) vs S(x, labels)) of checked inputs, after optional re-normalisation."""
    x, y, labels = (_maybe_normalize(t, normalize) for t in (x, y, labels))
    return _distil_term((x, labels), (y, labels), temperature, direction)


def soft_bind_loss(
    x1: Tensor,
    y1: Tensor,
    labels2: Tensor,
    x2: Tensor,
    y2: Tensor,
    labels1: Tensor,
    temperature: float | Tensor = 0.01,
    direction: KLDirection = "target_student",
    *,
    normalize: bool = True,
) -> dict[str, Tensor]:
    """Eq. 11, soft modality binding of two datasets (modalities M1, M2) through their label texts.

    ``KL(S(x1, labels2) vs S(y1, labels2)) + KL(S(x2, labels1) vs S(y2, labels1))``, each KL averaged
    over the samples of its dataset; the targets ``S(y, .)`` (Eq. 10 on label texts) are detached.

    Args:
        x1: ``(B1, E)`` samples of dataset 1 (modality M1).
        y1: ``(B1, E)`` text embeddings of each sample's own class label (dataset 1).
        labels2: ``(N2, E)`` text embeddings of all class labels of dataset 2.
        x2, y2: ``(B2, E)`` samples of dataset 2 and their own label texts.
        labels1: ``(N1, E)`` text embeddings of all class labels of dataset 1.
        temperature, direction: see :func:`similarity` and :func:`kl_div`.
        normalize: re-normalise every input to unit norm first.

    Returns:
        ``{"soft_bind_loss": scalar}``.
    """
    _check_temperature(temperature)
    _check_direction(direction)
    _check_rows("x1", x1)
    width = x1.shape[1]
    for name, t in (("y1", y1), ("labels2", labels2), ("x2", x2), ("y2", y2), ("labels1", labels1)):
        _check_rows(name, t, width)
    if y1.shape[0] != x1.shape[0] or y2.shape[0] != x2.shape[0]:
        raise InputError(
            f"each sample needs its own label text: x1 {tuple(x1.shape)} vs y1 {tuple(y1.shape)}, "
            f"x2 {tuple(x2.shape)} vs y2 {tuple(y2.shape)}"
        )
    loss = _soft_bind_half(x1, y1, labels2, temperature, direction, normalize) + _soft_bind_half(
        x2, y2, labels1, temperature, direction, normalize
    )
    return {"soft_bind_loss": loss}


def soft_bind_all(
    samples: Mapping[str, Sequence[Tensor]],
    modalities: Mapping[str, str],
    temperature: float | Tensor = 0.01,
    direction: KLDirection = "target_student",
    *,
    normalize: bool = True,
) -> dict[str, Tensor]:
    """Eq. 11 over every dataset pair: the mean of :func:`soft_bind_loss` over all *unordered* pairs
    ``{a, b}`` of datasets whose modalities differ (each pair counted once: Eq. 11 is already symmetric,
    binding a to b's labels and b to a's). Pairs of the same modality are skipped.

    Args:
        samples: dataset name -> ``(x, y, labels)``: ``x`` (B, E) samples, ``y`` (B, E) their own
            label texts, ``labels`` (N, E) texts of all the dataset's class labels.
        modalities: dataset name -> modality name (every key of ``samples`` must be present).
        temperature, direction, normalize: as in :func:`soft_bind_loss`.

    Returns:
        ``{"soft_bind_loss": scalar}``; an all-zero scalar without a graph when no pair has two
        different modalities (nothing to bind in this step).
    """
    if not samples:
        raise InputError("soft_bind_all needs at least one dataset in `samples`")
    missing = [name for name in samples if name not in modalities]
    if missing:
        raise InputError(f"no modality given for dataset(s) {missing}")
    for name, entry in samples.items():
        if len(entry) != 3:
            raise InputError(f"samples[{name!r}] must be (x, y, labels), got {len(entry)} items")
    terms = [
        soft_bind_loss(*samples[a][:2], samples[b][2], *samples[b][:2], samples[a][2], temperature, direction,
                       normalize=normalize)["soft_bind_loss"]
        for a, b in itertools.combinations(samples, 2)
        if modalities[a] != modalities[b]
    ]
    if not terms:
        return {"soft_bind_loss": next(iter(samples.values()))[0].new_zeros(())}
    return {"soft_bind_loss": torch.stack(terms).mean()}


def anchor_distil_loss(
    ext: Tensor,
    text: Tensor,
    image: Tensor,
    temperature: float | Tensor = 0.01,
    direction: KLDirection = "target_student",
    *,
    normalize: bool = True,
) -> dict[str, Tensor]:
    """Eq. 12, distillation from the anchor modalities (text, image) to an extended one (e.g. points).

    ``KL(S(ext, text) vs S(image, text)) + KL(S(ext, image) vs S(text, image))``: the (B, B) similarities
    of the extended modality to the anchors of the batch learn those between the two anchors (e.g. a
    rendered view of the point cloud and its label text). Targets are detached.

    Args:
        ext: ``(B, E)`` extended-modality embeddings of the batch (the student).
        text: ``(B, E)`` text embeddings of each sample's class label (anchor).
        image: ``(B, E)`` embeddings of each sample's paired image, e.g. a rendered view (anchor).
        temperature, direction: see :func:`similarity` and :func:`kl_div`.
        normalize: re-normalise every input to unit norm first.

    Returns:
        ``{"anchor_distil_loss": scalar}``.
    """
    _check_temperature(temperature)
    _check_direction(direction)
    _check_rows("ext", ext)
    for name, t in (("text", text), ("image", image)):
        _check_rows(name, t, ext.shape[1])
        if t.shape[0] != ext.shape[0]:
            raise InputError(f"{name} has {t.shape[0]} rows, expected one per sample ({ext.shape[0]})")
    ext, text, image = (_maybe_normalize(t, normalize) for t in (ext, text, image))
    loss = _distil_term((ext, text), (image, text), temperature, direction) + _distil_term(
        (ext, image), (text, image), temperature, direction
    )
    return {"anchor_distil_loss": loss}


def model_distil_loss(
    student_proj: Tensor,
    teacher_feat: Tensor,
    student_ext: Tensor,
    student_anchor: Tensor,
    teacher_ext: Tensor,
    teacher_anchor: Tensor,
    lam: float = 2000.0,
    temperature: float | Tensor = 0.01,
    direction: KLDirection = "target_student",
    normalize_features: bool = True,
    *,
    normalize: bool = True,
    teacher_temperature: float | Tensor | None = None,
) -> dict[str, Tensor]:
    """Eq. 13-15, distillation from a partial-modal foundation model (teacher, e.g. ULIP for points).

    ``L_model_distil = feat_align_loss + modal_align_loss`` (Eq. 15; lam is already inside feat_align):

    * ``feat_align_loss = lam * mean_b ||F_hat_b - F_b||^2 / T`` (Eq. 13), i.e. ``lam * F.mse_loss``:
      the squared error averaged over batch *and* feature width T. This is CLIP-KD's feature loss
      (``alpha_fd * F.mse_loss(normalize(proj(student)), teacher)``, alpha_fd = 2000, ref. [99]); the
      paper takes lam = 2000 "following [99] to scale the magnitude". With unit-norm features the
      per-element MSE is at most 4/T (about 0.008 at T = 512), so lam * MSE is O(1) like InfoNCE; a
      summed (per-sample) squared norm would be T times larger and swamp every other term.
    * ``modal_align_loss = KL(S(s_ext, s_anchor) vs S(t_ext, t_anchor)) + KL(S(s_anchor, s_ext) vs
      S(t_anchor, t_ext))`` (Eq. 14) over the (B, B) in-batch similarities; teacher side detached.

    Args:
        student_proj: ``(B, T)`` (or ``(B, L, T)``) student features after the feature projector
            (supplement §2.2), in the teacher's width T.
        teacher_feat: same shape, the teacher's (cached) features; detached.
        student_ext, student_anchor: ``(B, E)`` our embeddings of the extended and anchor modality of
            each paired sample.
        teacher_ext, teacher_anchor: ``(B, E_t)`` the teacher's embeddings of the same pairs.
        lam: lambda of Eq. 15 (paper: 2000).
        temperature, direction: see :func:`similarity` and :func:`kl_div`.
        normalize_features: L2-normalise student_proj and teacher_feat along the last dim before the MSE
            (as CLIP-KD does).
        normalize: re-normalise the four embeddings of the KL term to unit norm first.
        teacher_temperature: temperature of the teacher similarities (a teacher's own 1/logit scale);
            ``None`` uses ``temperature``.

    Returns:
        ``{"feat_align_loss": scalar, "modal_align_loss": scalar}``.
    """
    _check_temperature(temperature)
    if teacher_temperature is not None:
        _check_temperature(teacher_temperature)
    _check_direction(direction)
    if student_proj.shape != teacher_feat.shape:
        raise InputError(
            f"student_proj {tuple(student_proj.shape)} must match teacher_feat {tuple(teacher_feat.shape)}: "
            "the feature projector maps to the teacher's width"
        )
    _check_rows("student_ext", student_ext)
    _check_rows("student_anchor", student_anchor, student_ext.shape[1])
    _check_rows("teacher_ext", teacher_ext)
    _check_rows("teacher_anchor", teacher_anchor, teacher_ext.shape[1])
    if not student_ext.shape[0] == student_anchor.shape[0] == teacher_ext.shape[0] == teacher_anchor.shape[0]:
        raise InputError("student and teacher embeddings must hold the same B paired samples")

    teacher_feat = teacher_feat.detach()
    if normalize_features:
        student_proj, teacher_feat = F.normalize(student_proj, dim=-1), F.normalize(teacher_feat, dim=-1)
    feat_align = lam * F.mse_loss(student_proj, teacher_feat, reduction="mean")

    s_ext, s_anc, t_ext, t_anc = (
        _maybe_normalize(t, normalize) for t in (student_ext, student_anchor, teacher_ext, teacher_anchor)
    )
    modal_align = _distil_term((s_ext, s_anc), (t_ext, t_anc), temperature, direction, teacher_temperature)
    modal_align = modal_align + _distil_term(
        (s_anc, s_ext), (t_anc, t_ext), temperature, direction, teacher_temperature
    )
    return {"feat_align_loss": feat_align, "modal_align_loss": modal_align}
