"""Tests for the CLIP byte-level BPE tokenizer (unialign.backbone.tokenizer)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch

import unialign.backbone.tokenizer as tokenizer_module
from unialign.backbone.tokenizer import BUNDLED_BPE_PATH, ClipTokenizer

SOT, EOT = 49406, 49407

# Strings for the parity check against transformers.CLIPTokenizer (the Rust `tokenizers` backend in
# transformers 5). Its normaliser is NFC + whitespace collapse + lower-case; ours is CLIP's (ftfy.fix_text
# when installed, else NFC; html.unescape twice; whitespace collapse; lower-case). The two agree except on
# input that ftfy or html.unescape rewrites, so the list deliberately avoids HTML entities ("&amp;": CLIP
# unescapes, HF does not), ligatures ("ﬁ"), curly quotes, full-width letters and "ǅ" (ftfy rewrites those),
# and the expected ids hold with or without ftfy installed.
PARITY_STRINGS = [
    "a photo of a dog",
    "Hello, World!!!",
    "I'm sure it's fine; they've gone, we'll see, you'd know, they're here. Don't!",
    "The year 2024: 3.14159 and 1,000,000 items",
    "café crème brûlée naïve façade",
    "Cafe\u0301 with a combining accent",
    "emoji 😀🐶🚀 and 👍🏽 flags 🇫🇷",
    "  multiple    spaces\tand\ttabs\nnewlines  ",
    "UPPER CASE SHOUTING and MiXeD cAsE",
    "東京タワー and Ελληνικά and Русский",
    "symbols @#$%^&*()_+-=[]{}|\\;:<>?/~`",
    "nbsp\u00a0here\u200bzero width",
    "<|endoftext|> literal specials <|startoftext|>",
    "",
]


def _write_hf_files(directory: Path) -> None:
    """Writes a Hugging Face style vocab.json + merges.txt built from the bundled CLIP merges file."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    # CLIP's byte-to-unicode order: printable bytes as themselves, then the other 68 bytes as chr(256 + i).
    byte_tokens = [chr(b) for b in printable] + [chr(256 + i) for i in range(256 - len(printable))]
    with gzip.open(BUNDLED_BPE_PATH, "rt", encoding="utf-8") as fh:
        lines = fh.read().split("\n")[1 : 49152 - 256 - 2 + 1]
    vocab = byte_tokens + [t + "</w>" for t in byte_tokens] + [a + b for a, b in (m.split() for m in lines)]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("clip_tokenizer")
    _write_hf_files(directory)
    return directory


@pytest.fixture(scope="module")
def tok() -> ClipTokenizer:
    return ClipTokenizer.from_bpe_file()


def test_vocab_and_special_ids(tok: ClipTokenizer, hf_dir: Path) -> None:
    assert tok.vocab_size == 49408
    assert (tok.sot_token_id, tok.eot_token_id) == (SOT, EOT)
    assert ClipTokenizer.from_pretrained_dir(hf_dir).encoder == tok.encoder


def test_golden_ids(tok: ClipTokenizer) -> None:
    out = tok("a photo of a dog")
    assert out.shape == (1, 77)
    assert out.dtype == torch.int64
    expected = [SOT, 320, 1125, 539, 320, 1929, EOT] + [0] * 70
    assert out[0].tolist() == expected
    assert tok.encode("a photo of a dog") == expected[1:6]


def test_batch_and_custom_context_length(tok: ClipTokenizer) -> None:
    out = tok(["a photo of a dog", "a cat"], context_length=16)
    assert out.shape == (2, 16)
    assert out[1, :4].tolist() == [SOT, *tok.encode("a cat"), EOT]
    assert out[1, 4:].eq(0).all()
    assert ClipTokenizer.from_bpe_file(context_length=10)("x").shape == (1, 10)


def test_truncation_keeps_eot_last(tok: ClipTokenizer) -> None:
    text = " ".join(["word"] * 200)
    out = tok(text)
    assert out.shape == (1, 77)
    assert out[0, 0].item() == SOT and out[0, -1].item() == EOT
    assert out[0, 1:-1].tolist() == tok.encode(text)[:75]
    short = tok(text, context_length=8)[0].tolist()
    assert short == [SOT] + tok.encode("word") * 6 + [EOT]


@pytest.fixture(scope="module")
def hf_tokenizer(hf_dir: Path):  # transformers is an optional test dependency: untyped
    transformers = pytest.importorskip("transformers")
    # transformers 5: CLIPTokenizer is the `tokenizers`-backed class; its positional (vocab, merges) arguments
    # accept file paths. (The keywords vocab_file=/merges_file= are silently ignored there and give a 3-token
    # placeholder vocabulary, hence the size check.)
    hf = transformers.CLIPTokenizer(str(hf_dir / "vocab.json"), str(hf_dir / "merges.txt"))
    assert len(hf) == 49408
    return hf


@pytest.mark.parametrize("text", PARITY_STRINGS)
def test_parity_with_transformers(text: str, tok: ClipTokenizer, hf_dir: Path, hf_tokenizer) -> None:
    expected = hf_tokenizer(text)["input_ids"]
    assert expected[0] == SOT and expected[-1] == EOT
    for ours in (tok, ClipTokenizer.from_pretrained_dir(hf_dir)):
        row = ours(text, context_length=len(expected) + 3)[0].tolist()
        assert row == expected + [0, 0, 0]


@pytest.mark.parametrize(
    "text", ["a photo of a dog", "  The QUICK brown fox\tjumps over   the lazy dog  ", "pneumonoultramicroscopic"]
)
def test_decode_round_trip(text: str, tok: ClipTokenizer) -> None:
    assert tok.decode(tok.encode(text)) == " ".join(text.lower().split())


def test_decode_drops_specials_and_tensor_rows(tok: ClipTokenizer) -> None:
    row = tok("hello there")[0]
    assert tok.decode(row[: int((row == EOT).nonzero()[0]) + 1]) == "hello there"
    assert tok.decode(tok.encode("café 😀")) == "café 😀"


def test_from_dir_or_default(tok: ClipTokenizer, hf_dir: Path, tmp_path: Path) -> None:
    assert ClipTokenizer.from_dir_or_default(None).encoder == tok.encoder
    assert ClipTokenizer.from_dir_or_default(tmp_path).vocab_size == 49408  # empty dir: bundled vocabulary
    small = {"a</w>": 0, "<|startoftext|>": 1, "<|endoftext|>": 2}
    (tmp_path / "vocab.json").write_text(json.dumps(small), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    custom = ClipTokenizer.from_dir_or_default(tmp_path, context_length=5)
    assert custom.vocab_size == 3 and custom("a").tolist() == [[1, 0, 2, 0, 0]]


def test_missing_file_errors(tmp_path: Path) -> None:
    (tmp_path / "vocab.json").write_text("{}", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="merges.txt"):
        ClipTokenizer.from_pretrained_dir(tmp_path)
    (tmp_path / "vocab.json").unlink()
    (tmp_path / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        ClipTokenizer.from_pretrained_dir(tmp_path)


def test_malformed_file_errors(tmp_path: Path) -> None:
    (tmp_path / "vocab.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b\n", encoding="utf-8")
    with pytest.raises(ValueError, match="vocab.json"):
        ClipTokenizer.from_pretrained_dir(tmp_path)
    (tmp_path / "vocab.json").write_text(json.dumps({"<|startoftext|>": 0, "<|endoftext|>": 1}), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b c\n", encoding="utf-8")
    with pytest.raises(ValueError, match="merges.txt"):
        ClipTokenizer.from_pretrained_dir(tmp_path)


def test_word_cache_is_per_instance_and_bounded(tok: ClipTokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = ClipTokenizer(tok.encoder, list(tok.bpe_ranks), context_length=77)
    fresh.encode("zebra zebra giraffe")
    assert len(fresh._word_cache) == 2 and fresh._word_cache is not tok._word_cache
    monkeypatch.setattr(tokenizer_module, "WORD_CACHE_MAX", 3)
    words = ["one", "two", "three", "four", "five"]
    assert [fresh.encode(w) for w in words] == [tok.encode(w) for w in words]
    assert len(fresh._word_cache) <= 3
