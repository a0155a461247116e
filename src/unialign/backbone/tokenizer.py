"""CLIP byte-level BPE text tokenizer: text cleaning, regex pre-tokenisation, byte-to-unicode mapping, BPE.

The vocabulary comes from the bundled ``bpe_simple_vocab_16e6.txt.gz`` (OpenAI CLIP, MIT licence, see
``assets/LICENSE-CLIP-BPE.txt``) or from a Hugging Face CLIP tokenizer directory (vocab.json + merges.txt).
"""

from __future__ import annotations

import gzip
import html
import itertools
import json
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import regex
import torch

SOT_TOKEN = "<|startoftext|>"
EOT_TOKEN = "<|endoftext|>"
WORD_END = "</w>"
BUNDLED_BPE_PATH = Path(__file__).parent / "assets" / "bpe_simple_vocab_16e6.txt.gz"
VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
NUM_BPE_MERGES = 49152 - 256 - 2  # merges used from the bundled file: lines[1 : NUM_BPE_MERGES + 1]
WORD_CACHE_MAX = 100_000
TOKEN_PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)
WHITESPACE_PATTERN = regex.compile(r"\s+")


def bytes_to_unicode() -> dict[int, str]:
    """Builds CLIP's reversible byte-to-unicode table, in CLIP's vocabulary order.

    Returns:
        A dict from byte to character: printable Latin-1 bytes map to themselves, the other 68 to ``chr(256 + i)``.
    """
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in kept]
    return {**{b: chr(b) for b in kept}, **{b: chr(256 + i) for i, b in enumerate(others)}}


def _parse_merges(lines: list[str], source: Path) -> list[tuple[str, str]]:
    """Parses merge lines (an optional ``#version`` header first) into pairs, naming ``source`` on error."""
    start = 1 if lines and lines[0].startswith("#version") else 0
    merges = [tuple(line.split()) for line in lines[start:]]
    for number, merge in enumerate(merges, start=start + 1):
        if len(merge) != 2:
            raise ValueError(f"{source}: merge {number} is not a pair of tokens: {' '.join(merge)!r}")
    return merges  # type: ignore[return-value]


class ClipTokenizer:
    """CLIP byte-level BPE tokenizer producing fixed-length ``int64`` id tensors.

    Args:
        encoder: Map from BPE token string (byte-mapped, word-final tokens ending in ``</w>``) to id.
            Must contain ``<|startoftext|>`` and ``<|endoftext|>``.
        merges: BPE merge pairs, highest priority first.
        context_length: Default sequence length of the tensors returned by ``__call__``.

    Raises:
        ValueError: If the special tokens are missing or ``context_length`` is below 2.
    """

    def __init__(self, encoder: dict[str, int], merges: list[tuple[str, str]], context_length: int = 77) -> None:
        if SOT_TOKEN not in encoder or EOT_TOKEN not in encoder:
            raise ValueError(f"vocabulary lacks the special tokens {SOT_TOKEN!r} / {EOT_TOKEN!r}")
        if context_length < 2:
            raise ValueError(f"context_length must be at least 2, got {context_length}")
        self.encoder = dict(encoder)
        self.decoder = {i: t for t, i in self.encoder.items()}
        self.bpe_ranks = {tuple(pair): rank for rank, pair in enumerate(merges)}
        self.context_length = context_length
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        self.special_ids = {SOT_TOKEN: self.encoder[SOT_TOKEN], EOT_TOKEN: self.encoder[EOT_TOKEN]}
        self._word_cache: dict[str, tuple[int, ...]] = {}
        try:
            from ftfy import fix_text  # optional: OpenAI's exact text cleaning
        except ImportError:
            fix_text = None
        self._fix_text = fix_text

    @classmethod
    def from_bpe_file(cls, path: str | Path | None = None, context_length: int = 77) -> ClipTokenizer:
        """Builds the tokenizer from a gzipped CLIP merges file.

        The 49408-token vocabulary is CLIP's: 256 byte characters, the same with ``</w>``, each merge, sot, eot.

        Args:
            path: The ``bpe_simple_vocab_16e6.txt.gz`` file; the bundled copy when None.
            context_length: Default output length.
        """
        path = Path(path) if path is not None else BUNDLED_BPE_PATH
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            merges = _parse_merges(fh.read().split("\n")[1 : NUM_BPE_MERGES + 1], path)  # line 0: a header
        byte_tokens = list(bytes_to_unicode().values())
        vocab = [*byte_tokens, *(t + WORD_END for t in byte_tokens), *("".join(m) for m in merges)]
        vocab += [SOT_TOKEN, EOT_TOKEN]
        return cls({t: i for i, t in enumerate(vocab)}, merges, context_length)

    @classmethod
    def from_pretrained_dir(cls, path: str | Path, context_length: int = 77) -> ClipTokenizer:
        """Builds the tokenizer from a Hugging Face CLIP tokenizer directory.

        Args:
            path: Directory holding ``vocab.json`` and ``merges.txt``.
            context_length: Default output length.

        Raises:
            FileNotFoundError: If ``vocab.json`` or ``merges.txt`` is absent.
            ValueError: If either file is malformed.
        """
        vocab_path, merges_path = Path(path) / VOCAB_FILE, Path(path) / MERGES_FILE
        for file in (vocab_path, merges_path):
            if not file.is_file():
                raise FileNotFoundError(f"{file.name} not found in tokenizer directory {file.parent}")
        try:
            encoder = json.loads(vocab_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{vocab_path} is not valid JSON: {err}") from err
        if not isinstance(encoder, dict) or not all(isinstance(k, str) and type(v) is int for k, v in encoder.items()):
            raise ValueError(f"{vocab_path} must be a JSON object mapping token strings to integer ids")
        try:
            lines = [line for line in merges_path.read_text(encoding="utf-8").split("\n") if line.strip()]
        except UnicodeDecodeError as err:
            raise ValueError(f"{merges_path} is not UTF-8 text: {err}") from err
        merges = _parse_merges(lines, merges_path)
        try:
            return cls(encoder, merges, context_length)
        except ValueError as err:
            raise ValueError(f"{vocab_path}: {err}") from err

    @classmethod
    def from_dir_or_default(cls, path: str | Path | None, context_length: int = 77) -> ClipTokenizer:
        """Uses a directory's ``vocab.json``/``merges.txt`` when both exist, else the bundled vocabulary.

        Args:
            path: A candidate tokenizer directory, or None.
            context_length: Default output length.
        """
        if path is not None and all((Path(path) / name).is_file() for name in (VOCAB_FILE, MERGES_FILE)):
            return cls.from_pretrained_dir(path, context_length)
        return cls.from_bpe_file(None, context_length)

    @property
    def sot_token_id(self) -> int:
        """Id of ``<|startoftext|>`` (49406 in CLIP's vocabulary)."""
        return self.special_ids[SOT_TOKEN]

    @property
    def eot_token_id(self) -> int:
        """Id of ``<|endoftext|>`` (49407 in CLIP's vocabulary)."""
        return self.special_ids[EOT_TOKEN]

    @property
    def vocab_size(self) -> int:
        """Number of entries in the vocabulary."""
        return len(self.encoder)

    def clean(self, text: str) -> str:
        """Applies CLIP's text cleaning: fix/normalise, unescape HTML twice, collapse whitespace, lower-case.

        Without ``ftfy`` installed, NFC normalisation (the last step of ``ftfy.fix_text``) stands in for it.
        """
        text = self._fix_text(text) if self._fix_text is not None else unicodedata.normalize("NFC", text)
        return WHITESPACE_PATTERN.sub(" ", html.unescape(html.unescape(text))).strip().lower()

    def _bpe(self, token: str) -> tuple[int, ...]:
        """Encodes one byte-mapped pre-token with rank-ordered merges, using the instance cache."""
        if (cached := self._word_cache.get(token)) is not None:
            return cached
        word = [*token[:-1], token[-1] + WORD_END]
        while len(word) > 1:
            best = min(itertools.pairwise(word), key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if best not in self.bpe_ranks:
                break
            merged, i = [], 0
            while i < len(word):  # merge every occurrence of the best pair, left to right
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        try:
            ids = tuple(self.encoder[piece] for piece in word)
        except KeyError as err:
            raise ValueError(f"BPE piece {err.args[0]!r} is missing from the vocabulary") from err
        if len(self._word_cache) >= WORD_CACHE_MAX:
            self._word_cache.clear()
        self._word_cache[token] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Tokenises text into BPE ids, without start/end tokens.

        Args:
            text: Raw text. Literal ``<|startoftext|>``/``<|endoftext|>`` in it map to their ids, as in CLIP.
        """
        ids: list[int] = []
        for piece in TOKEN_PATTERN.findall(self.clean(text)):
            if piece in self.special_ids:
                ids.append(self.special_ids[piece])
            else:
                ids.extend(self._bpe("".join(self.byte_encoder[b] for b in piece.encode("utf-8"))))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Turns ids back into text: special tokens are dropped and each word end becomes a space.

        Trailing whitespace is stripped and invalid UTF-8 becomes U+FFFD. Padding zeros are not special
        (id 0 is ``!``): cut a padded row at its eot before decoding.

        Args:
            ids: Token ids (a list or a 1-D tensor).
        """
        special, buffer = set(self.special_ids.values()), bytearray()
        for token in (self.decoder[int(i)] for i in ids if int(i) not in special):
            end = token.endswith(WORD_END)
            buffer.extend(self.byte_decoder[c] for c in (token[: -len(WORD_END)] if end else token))
            buffer.extend(b" " if end else b"")
        return buffer.decode("utf-8", errors="replace").rstrip()

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> torch.LongTensor:
        """Tokenises a text or a batch into a zero-padded ``(B, context_length)`` int64 tensor.

        Each row is ``[sot] + encode(text) + [eot]``; too-long rows are truncated with eot kept last.

        Args:
            texts: One string or a sequence of strings.
            context_length: Row length; the instance default when None.
        """
        texts = [texts] if isinstance(texts, str) else texts
        length = self.context_length if context_length is None else context_length
        if length < 2:
            raise ValueError(f"context_length must be at least 2, got {length}")
        out = torch.zeros(len(texts), length, dtype=torch.long)
        for row, text in enumerate(texts):
            tokens = [self.sot_token_id, *self.encode(text), self.eot_token_id]
            if len(tokens) > length:  # truncate, keeping eot last as open_clip does
                tokens = [*tokens[: length - 1], self.eot_token_id]
            out[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        return out  # type: ignore[return-value]
