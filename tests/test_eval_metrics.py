"""Eval metrics against independent computations: sklearn for AP / balanced accuracy, loops for the rest."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unialign.errors import InputError
from unialign.eval.metrics import (
    average_precision, mean_average_precision, mean_per_class_recall, recall_at_k, retrieval_metrics, topk_accuracy,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def _rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def test_topk_accuracy_matches_brute_force() -> None:
    rng = _rng()
    logits = rng.normal(size=(50, 7))
    targets = rng.integers(0, 7, 50)
    got = topk_accuracy(torch.from_numpy(logits), targets, (1, 3, 5, 10))
    for k in (1, 3, 5):
        hits = 0
        for i in range(50):
            better = sum(1 for c in range(7) if logits[i, c] > logits[i, targets[i]])
            hits += better < k
        assert got[k] == pytest.approx(hits / 50)
    assert got[10] == 1.0  # k > C clamps to C
    assert topk_accuracy([[0.1, 0.9], [0.8, 0.2]], [1, 1], (1,))[1] == 0.5


@pytest.mark.filterwarnings("ignore:y_pred contains classes")
def test_mean_per_class_recall_is_balanced_accuracy() -> None:
    rng = _rng()
    logits = rng.normal(size=(60, 5))
    targets = rng.integers(0, 4, 60)  # class 4 never appears: it must not count
    expected = sklearn_metrics.balanced_accuracy_score(targets, logits.argmax(1))
    assert mean_per_class_recall(logits, targets) == pytest.approx(expected)
    assert mean_per_class_recall(logits.argmax(1), targets) == pytest.approx(expected)


@pytest.mark.parametrize("ties", [False, True])
def test_average_precision_matches_sklearn(ties: bool) -> None:
    rng = _rng()
    for _ in range(20):
        n = int(rng.integers(5, 40))
        scores = rng.integers(0, 4, n).astype(float) if ties else rng.normal(size=n)
        y = rng.random(n) < 0.3
        if not y.any():
            y[0] = True
        assert average_precision(scores, y) == pytest.approx(sklearn_metrics.average_precision_score(y, scores))
    assert np.isnan(average_precision([0.1, 0.2], [0, 0]))


def test_hand_computed_average_precision() -> None:
    # ranking: pos, neg, pos -> AP = 1/2 * 1 + 1/2 * 2/3
    assert average_precision([0.9, 0.5, 0.1], [1, 0, 1]) == pytest.approx(0.5 + 1 / 3)


def test_map_skips_classes_without_positives() -> None:
    rng = _rng()
    scores = rng.normal(size=(30, 6))
    targets = (rng.random((30, 6)) < 0.25).astype(int)
    targets[:, 2] = 0  # no positive: excluded from the mean
    m, aps = mean_average_precision(scores, targets)
    ref = [sklearn_metrics.average_precision_score(targets[:, c], scores[:, c])
           for c in range(6) if targets[:, c].any()]
    assert m == pytest.approx(float(np.mean(ref)))
    assert np.isnan(aps[2]) and len(aps) == 6
    with pytest.raises(InputError):
        mean_average_precision(scores, np.zeros_like(targets))


def _brute_recall(sim: np.ndarray, pos: np.ndarray, k: int) -> float:
    hits = 0
    for q in range(sim.shape[0]):
        ranked = sorted(range(sim.shape[1]), key=lambda g: -sim[q, g])[:k]
        hits += any(pos[q, g] for g in ranked)
    return hits / sim.shape[0]


def test_recall_at_k_with_several_positives_matches_loops() -> None:
    rng = _rng()
    n_items, caps = 12, 3
    sim = rng.normal(size=(n_items * caps, n_items))  # captions x items, no ties
    owner = np.repeat(np.arange(n_items), caps)
    pos = owner[:, None] == np.arange(n_items)[None, :]
    got = recall_at_k(sim, pos, (1, 5, 10))
    for k in (1, 5, 10):
        assert got[k] == pytest.approx(_brute_recall(sim, pos, k))
    # item -> text: each item has 3 positive captions; a hit when any is in the top-k
    back = recall_at_k(sim.T, pos.T, (1, 5))
    for k in (1, 5):
        assert back[k] == pytest.approx(_brute_recall(sim.T, pos.T, k))


def test_retrieval_metrics_names_and_directions() -> None:
    # 2 captions for item 0, 1 caption for item 1; caption 1 ranks item 1 first (miss at R@1)
    sim = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.7]])
    pos = np.array([[1, 0], [1, 0], [0, 1]], dtype=bool)
    m = retrieval_metrics(sim, pos, (1, 2), query="text", gallery="audio")
    assert m["audio_retrieval_recall@1"] == pytest.approx(2 / 3)  # text -> audio
    assert m["audio_retrieval_recall@2"] == 1.0
    # audio 0: best caption is 0 (positive) -> hit; audio 1: best caption is 1 (neg, 0.8) -> miss at 1
    assert m["text_retrieval_recall@1"] == pytest.approx(0.5)
    assert m["text_retrieval_recall@2"] == 1.0


def test_metric_shape_errors() -> None:
    with pytest.raises(InputError):
        topk_accuracy(np.zeros((3, 2)), [0, 1])
    with pytest.raises(InputError):
        topk_accuracy(np.zeros((2, 2)), [0, 2])
    with pytest.raises(InputError):
        recall_at_k(np.zeros((2, 3)), np.zeros((3, 2), dtype=bool))
