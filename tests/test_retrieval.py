"""unialign.retrieval: exact index (torch and faiss), composed queries, pickle-free files, zero-shot classify."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unialign.errors import InputError
from unialign.retrieval import EmbeddingIndex, classify, compose, faiss_available, read_embeddings, save_embeddings


def _basis(e: int = 8) -> torch.Tensor:
    return torch.eye(e)


def _random_index(n: int = 200, e: int = 16, backend: str = "torch") -> EmbeddingIndex:
    g = torch.Generator().manual_seed(1)
    vectors = F.normalize(torch.randn(n, e, generator=g), dim=-1)
    modalities = ["image" if i % 3 else "audio" for i in range(n)]
    return EmbeddingIndex([f"item{i}" for i in range(n)], modalities, vectors, backend=backend)


def test_composed_query_finds_the_item_with_both_attributes() -> None:
    eye = _basis()
    a, b = eye[0], eye[1]
    c = F.normalize(a + b, dim=0)  # the item carrying both directions
    others = [F.normalize(eye[0] + 0.9 * eye[2], dim=0), F.normalize(eye[1] + 0.9 * eye[3], dim=0)]
    index = EmbeddingIndex(["a", "b", "c", "a2", "b2"], ["image", "audio", "point", "image", "audio"],
                           torch.stack([a, b, c, *others]), backend="torch")
    assert index.search(a, k=1)[0].id == "a"
    assert index.search(b, k=1)[0].id == "b"
    assert [h.id for h in index.search(a, k=3)] == ["a", "a2", "c"]  # alone, C is only third
    top = index.search(compose([a, b]), k=2)
    assert top[0].id == "c" and top[0].modality == "point" and top[0].score == pytest.approx(1.0, abs=1e-6)
    assert top[1].score == pytest.approx(2**-0.5, abs=1e-6)
    # scale of the parts does not matter (each is normalised first); weights do
    assert torch.allclose(compose([3 * a, b]), c, atol=1e-6)
    tilted = compose([a, b], [3.0, 1.0])
    assert torch.allclose(tilted, F.normalize(3 * a + b, dim=0), atol=1e-6)
    assert float(tilted.norm()) == pytest.approx(1.0, abs=1e-6)


def test_compose_rejects_bad_inputs() -> None:
    a = _basis()[0]
    with pytest.raises(InputError, match="at least one"):
        compose([])
    with pytest.raises(InputError, match="2 embeddings but 1 weights"):
        compose([a, a], [1.0])
    with pytest.raises(InputError, match="zero"):
        compose([a, a], [1.0, -1.0])
    with pytest.raises(InputError, match="one width"):
        compose([a, torch.ones(4)])


def test_search_filters_clamps_and_checks() -> None:
    index = _random_index()
    hits = index.search(index.vectors[5], k=5)
    assert hits[0].id == "item5" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    audio = index.search(index.vectors[5], k=400, modality="audio")
    assert len(audio) == index.modality_counts()["audio"] and all(h.modality == "audio" for h in audio)
    assert "item5" not in {h.id for h in audio}  # item5 is an image
    batch = index.search(index.vectors[:3], k=2)
    assert [hs[0].id for hs in batch] == ["item0", "item1", "item2"]
    with pytest.raises(InputError, match="no items of modality 'depth'"):
        index.search(index.vectors[0], modality="depth")
    with pytest.raises(InputError, match="width 8, the index 16"):
        index.search(torch.ones(8))
    with pytest.raises(InputError, match="k must"):
        index.search(index.vectors[0], k=0)
    with pytest.raises(InputError, match="NaN"):
        index.search(torch.full((16,), float("nan")))


@pytest.mark.skipif(not faiss_available(), reason="faiss-cpu not installed")
def test_faiss_and_exact_agree() -> None:
    exact, fast = _random_index(backend="torch"), _random_index(backend="faiss")
    assert fast.backend == "faiss" and exact.backend == "torch"
    queries = F.normalize(torch.randn(6, 16, generator=torch.Generator().manual_seed(7)), dim=-1)
    for modality in (None, "image", "audio"):
        a = exact.search(queries, k=10, modality=modality)
        b = fast.search(queries, k=10, modality=modality)
        for ha, hb in zip(a, b):
            assert [h.id for h in ha] == [h.id for h in hb]
            assert np.allclose([h.score for h in ha], [h.score for h in hb], atol=1e-5)


def test_index_save_load_round_trip_without_pickle(tmp_path: Path) -> None:
    index = _random_index(n=30)
    path = index.save(tmp_path / "index.npz")
    with np.load(path, allow_pickle=False) as data:
        assert set(data.files) == {"ids", "modalities", "vectors", "format"}
        assert all(data[k].dtype != object for k in data.files)
        assert data["vectors"].dtype == np.float32 and data["ids"].dtype.kind == "U"
    again = EmbeddingIndex.load(path, backend="torch")
    assert again.ids == index.ids and again.modalities == index.modalities
    assert torch.equal(again.vectors, index.vectors)
    q = index.vectors[3]
    assert again.search(q, k=5) == index.search(q, k=5)
    # a file that would need pickle is refused, not unpickled
    np.savez(tmp_path / "evil.npz", ids=np.array([{"x": 1}], dtype=object), modalities=np.array(["a"]),
             vectors=np.ones((1, 16), np.float32))
    with pytest.raises(InputError, match="evil.npz"):
        EmbeddingIndex.load(tmp_path / "evil.npz")
    with pytest.raises(InputError, match="not found"):
        EmbeddingIndex.load(tmp_path / "missing.npz")


def test_index_from_several_embedding_files(tmp_path: Path) -> None:
    eye = _basis(4)
    save_embeddings(tmp_path / "img.npz", ["x.png", "y.png"], eye[:2], "image")
    save_embeddings(tmp_path / "aud.npz", ["z.wav"], eye[2:3], "audio")
    ids, mods, vecs = read_embeddings(tmp_path / "img.npz")
    assert ids == ["x.png", "y.png"] and mods == ["image", "image"] and vecs.dtype == torch.float32
    index = EmbeddingIndex.from_files([tmp_path / "img.npz", tmp_path / "aud.npz"])
    assert index.modality_counts() == {"image": 2, "audio": 1}
    assert index.search(eye[2], k=1)[0] == ("z.wav", "audio", pytest.approx(1.0))
    # an index file can be merged again
    index.save(tmp_path / "idx.npz")
    assert len(EmbeddingIndex.from_files([tmp_path / "idx.npz", tmp_path / "aud.npz"])) == 4
    save_embeddings(tmp_path / "wide.npz", ["w"], torch.ones(1, 5), "image")
    with pytest.raises(InputError, match="width 5"):
        EmbeddingIndex.from_files([tmp_path / "img.npz", tmp_path / "wide.npz"])


def test_classify_constructed_case() -> None:
    eye = _basis()
    labels = eye[:3]  # three label directions
    x = F.normalize(torch.stack([eye[1] + 0.2 * eye[0], eye[2] + 0.1 * eye[5]]), dim=-1)
    out = classify(x, labels, ["cat", "dog", "car"])
    assert out.probs.shape == (2, 3)
    assert torch.allclose(out.probs.sum(1), torch.ones(2))
    assert out.predictions() == ["dog", "car"]
    top = out.top(2)
    assert top[0][0][0] == "dog" and top[0][1][0] == "cat" and top[0][0][1] > 0.99
    # a lower temperature scale flattens the distribution but keeps the order
    soft = classify(x, labels, ["cat", "dog", "car"], logit_scale=1.0)
    assert soft.predictions() == ["dog", "car"] and float(soft.probs.max()) < 0.6
    with pytest.raises(InputError, match="3 label embeddings but 2 labels"):
        classify(x, labels, ["cat", "dog"])
