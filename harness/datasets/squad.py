"""SQuAD v1.1 for BERT: the reference feature conversion with a safe on-disk cache, and a synthetic stand-in.

:class:`SquadFeatures` turns a ``dev-v1.1.json`` and a WordPiece vocab into model inputs exactly as
MLPerf's reference (``create_squad_data.py``, after Google's ``run_squad.py``) does: max_seq_length 384,
doc_stride 128, max_query_length 64; ``[CLS] query [SEP] doc-span [SEP]``, padded with zeros. A paragraph
longer than the room left by the query is cut into overlapping spans, one feature each (10,570 questions
give 10,833 features). The features are cached under a folder named by the sha256 of the json bytes, the
vocab bytes, the three lengths and :data:`CODE_VERSION`, so a changed input is never served a stale cache
(the reference's pickle is reused whatever changed). A cache is built in a temporary folder and renamed
into place when complete, so a half-written one is never used.

Both datasets offer what LoadGen's QSL needs (``count``, ``synthetic``, ``description``, ``sample(i)``:
``(input_ids, input_mask, segment_ids)`` int64 [384] each) and what the accuracy script needs
(``examples`` and ``feature(i)``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .wordpiece import CLS, SEP, FullTokenizer, load_vocab

MAX_SEQ_LENGTH = 384
DOC_STRIDE = 128
MAX_QUERY_LENGTH = 64
CODE_VERSION = "1"
"""Part of the cache key: bump it whenever the conversion below changes its output."""

_FEATURES_FILE = "features.npz"
_EXAMPLES_FILE = "examples.json"
_MARKER_FILE = "complete.json"
_CACHE_FILES = (_FEATURES_FILE, _EXAMPLES_FILE)
_ARRAYS = ("input_ids", "input_mask", "segment_ids", "token_to_orig", "max_context", "length", "example_index",
           "doc_span_index")

Progress = Callable[[int, int], None]
"""``progress(done, total)``, called while examples are converted."""


@dataclass
class SquadExample:
    """One question with its paragraph split on whitespace, as the reference's ``read_squad_examples``."""

    qas_id: str
    question_text: str
    doc_tokens: list[str]
    answers: list[str]
    """Ground-truth answer texts (the evaluation takes the best match over them)."""


@dataclass
class Feature:
    """One model input and what post-processing needs to map its logits back to the paragraph."""

    example_index: int
    doc_span_index: int
    tokens: list[str]
    """``[CLS] query [SEP] span [SEP]``, without padding."""
    token_to_orig_map: dict[int, int]
    """Position in ``tokens`` -> index in the example's ``doc_tokens``, for the span's tokens only."""
    token_is_max_context: dict[int, bool]
    """Position in ``tokens`` -> whether this span gives that token its most context (same keys)."""
    input_ids: np.ndarray
    input_mask: np.ndarray
    segment_ids: np.ndarray


def _is_whitespace(c: str) -> bool:
    return c in " \t\r\n" or ord(c) == 0x202F


def read_squad_examples(data: dict) -> list[SquadExample]:
    """Examples of a parsed SQuAD v1.1 json, in file order. Raises :class:`DatasetError` for a wrong format."""
    examples = []
    try:
        for entry in data["data"]:
            for paragraph in entry["paragraphs"]:
                doc_tokens: list[str] = []
                prev_is_whitespace = True
                for c in paragraph["context"]:
                    if _is_whitespace(c):
                        prev_is_whitespace = True
                    else:
                        if prev_is_whitespace:
                            doc_tokens.append(c)
                        else:
                            doc_tokens[-1] += c
                        prev_is_whitespace = False
                for qa in paragraph["qas"]:
                    examples.append(SquadExample(qas_id=qa["id"], question_text=qa["question"], doc_tokens=doc_tokens,
                                                 answers=[a["text"] for a in qa.get("answers", [])]))
    except (KeyError, TypeError) as exc:
        raise DatasetError(f"This is not a SQuAD v1.1 json (missing or malformed {exc}).",
                           "use dev-v1.1.json (md5 3e85deb501d4e538b6bc56f786231552) or a file in its format.") from exc
    return examples


def _check_is_max_context(doc_spans: list[tuple[int, int]], cur_span_index: int, position: int) -> bool:
    """Whether span ``cur_span_index`` gives the token at ``position`` the most context of all spans.

    Context is the smaller of the token's left and right context in the span, plus 0.01 x the span's
    length to break ties, as in the reference.
    """
    best_score = None
    best_span_index = None
    for span_index, (start, length) in enumerate(doc_spans):
        end = start + length - 1
        if position < start or position > end:
            continue
        score = min(position - start, end - position) + 0.01 * length
        if best_score is None or score > best_score:
            best_score = score
            best_span_index = span_index
    return cur_span_index == best_span_index


def doc_spans_for(n_tokens: int, max_tokens_for_doc: int, doc_stride: int) -> list[tuple[int, int]]:
    """(start, length) of the sliding windows over a paragraph of ``n_tokens`` WordPiece tokens."""
    spans = []
    start = 0
    while start < n_tokens:
        length = min(n_tokens - start, max_tokens_for_doc)
        spans.append((start, length))
        if start + length == n_tokens:
            break
        start += min(length, doc_stride)
    return spans


def convert_examples_to_features(examples: list[SquadExample], tokenizer: FullTokenizer, *,
                                 max_seq_length: int = MAX_SEQ_LENGTH, doc_stride: int = DOC_STRIDE,
                                 max_query_length: int = MAX_QUERY_LENGTH,
                                 progress: Progress | None = None) -> dict[str, np.ndarray]:
    """The reference's ``convert_examples_to_features`` (evaluation mode) into arrays, one row per feature.

    Returns ``input_ids`` (int32), ``input_mask``, ``segment_ids`` (int8) [N, max_seq_length];
    ``token_to_orig`` (int32, -1 outside the span) and ``max_context`` (bool) [N, max_seq_length];
    ``length`` (tokens before padding), ``example_index``, ``doc_span_index`` (int32) [N].
    """
    rows: dict[str, list] = {name: [] for name in _ARRAYS}
    last_doc: list[str] | None = None
    for example_index, example in enumerate(examples):
        query_tokens = tokenizer.tokenize(example.question_text)[:max_query_length]
        # The questions of a paragraph share its doc_tokens: tokenize the paragraph once.
        if example.doc_tokens is not last_doc:
            last_doc = example.doc_tokens
            tok_to_orig_index: list[int] = []
            all_doc_tokens: list[str] = []
            for i, token in enumerate(example.doc_tokens):
                for sub_token in tokenizer.tokenize(token):
                    tok_to_orig_index.append(i)
                    all_doc_tokens.append(sub_token)
        # The -3 accounts for [CLS], [SEP] and [SEP].
        max_tokens_for_doc = max_seq_length - len(query_tokens) - 3
        doc_spans = doc_spans_for(len(all_doc_tokens), max_tokens_for_doc, doc_stride)
        for doc_span_index, (span_start, span_length) in enumerate(doc_spans):
            tokens = [CLS, *query_tokens, SEP]
            segment_ids = [0] * len(tokens)
            token_to_orig = np.full(max_seq_length, -1, dtype=np.int32)
            max_context = np.zeros(max_seq_length, dtype=bool)
            for i in range(span_length):
                split_token_index = span_start + i
                token_to_orig[len(tokens)] = tok_to_orig_index[split_token_index]
                max_context[len(tokens)] = _check_is_max_context(doc_spans, doc_span_index, split_token_index)
                tokens.append(all_doc_tokens[split_token_index])
                segment_ids.append(1)
            tokens.append(SEP)
            segment_ids.append(1)
            n = len(tokens)
            input_ids = np.zeros(max_seq_length, dtype=np.int32)
            input_ids[:n] = tokenizer.convert_tokens_to_ids(tokens)
            input_mask = np.zeros(max_seq_length, dtype=np.int8)
            input_mask[:n] = 1
            segments = np.zeros(max_seq_length, dtype=np.int8)
            segments[:n] = segment_ids
            for name, value in (("input_ids", input_ids), ("input_mask", input_mask), ("segment_ids", segments),
                                ("token_to_orig", token_to_orig), ("max_context", max_context), ("length", n),
                                ("example_index", example_index), ("doc_span_index", doc_span_index)):
                rows[name].append(value)
        if progress is not None:
            progress(example_index + 1, len(examples))
    empty = np.zeros((0, max_seq_length))
    arrays = {}
    for name in ("input_ids", "input_mask", "segment_ids", "token_to_orig", "max_context"):
        dtype = {"input_ids": np.int32, "token_to_orig": np.int32, "max_context": bool}.get(name, np.int8)
        arrays[name] = np.stack(rows[name]).astype(dtype) if rows[name] else empty.astype(dtype)
    for name in ("length", "example_index", "doc_span_index"):
        arrays[name] = np.array(rows[name], dtype=np.int32)
    return arrays


def cache_key(json_bytes: bytes, vocab_bytes: bytes, max_seq_length: int, doc_stride: int,
              max_query_length: int) -> str:
    """sha256 over everything the features depend on: a change in any of them means a new cache."""
    h = hashlib.sha256()
    for part in (b"squad-features", CODE_VERSION.encode(), json_bytes, vocab_bytes,
                 f"{max_seq_length},{doc_stride},{max_query_length}".encode()):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


class SquadFeatures:
    """SQuAD v1.1 dev as BERT features, converted once and then read from the cache.

    ``count`` keeps the first ``count`` features (the reference's ``total_count_override``).
    """

    synthetic = False

    def __init__(self, json_path: Path, vocab_path: Path, *, cache_dir: Path, count: int | None = None,
                 max_seq_length: int = MAX_SEQ_LENGTH, doc_stride: int = DOC_STRIDE,
                 max_query_length: int = MAX_QUERY_LENGTH, progress: Progress | None = None,
                 notify: Callable[[str], None] | None = None):
        self.json_path = Path(json_path)
        self.vocab_path = Path(vocab_path)
        self.max_seq_length = max_seq_length
        json_bytes = _read(self.json_path, "SQuAD json", "use dev-v1.1.json from the SQuAD site.")
        vocab_bytes = _read(self.vocab_path, "BERT vocabulary", "point to the uncased BERT vocab.txt.")
        self.key = cache_key(json_bytes, vocab_bytes, max_seq_length, doc_stride, max_query_length)
        self.cache_path = Path(cache_dir) / f"squad-v1.1-{self.key[:24]}"
        self.tokenizer = FullTokenizer(load_vocab(self.vocab_path))
        self.notify = notify or (lambda text: None)
        """Told, in words, when a damaged cache is rebuilt."""
        loaded = self._load_cache()
        self.from_cache = loaded is not None
        if loaded is None:
            try:
                data = json.loads(json_bytes.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise DatasetError(f"{self.json_path} is not valid JSON ({exc}).",
                                   "use dev-v1.1.json from the SQuAD site (a truncated download?).") from exc
            examples = read_squad_examples(data)
            arrays = convert_examples_to_features(examples, self.tokenizer, max_seq_length=max_seq_length,
                                                  doc_stride=doc_stride, max_query_length=max_query_length,
                                                  progress=progress)
            self._write_cache(examples, arrays)
            loaded = examples, arrays
        self.examples, self._arrays = loaded
        self.total = len(self._arrays["length"])
        self.count = self.total if count is None else max(0, min(count, self.total))
        questions = len({int(i) for i in self._arrays["example_index"][:self.count]})
        self.description = (f"SQuAD v1.1 ({self.count} of {self.total} features, {questions} of "
                            f"{len(self.examples)} questions, from {self.json_path.name})")

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = self._arrays
        return (a["input_ids"][index].astype(np.int64), a["input_mask"][index].astype(np.int64),
                a["segment_ids"][index].astype(np.int64))

    def feature(self, index: int) -> Feature:
        a = self._arrays
        n = int(a["length"][index])
        in_span = np.flatnonzero(a["token_to_orig"][index] >= 0)
        return Feature(
            example_index=int(a["example_index"][index]),
            doc_span_index=int(a["doc_span_index"][index]),
            tokens=self.tokenizer.convert_ids_to_tokens(a["input_ids"][index, :n].tolist()),
            token_to_orig_map={int(p): int(a["token_to_orig"][index, p]) for p in in_span},
            token_is_max_context={int(p): bool(a["max_context"][index, p]) for p in in_span},
            input_ids=a["input_ids"][index].astype(np.int64),
            input_mask=a["input_mask"][index].astype(np.int64),
            segment_ids=a["segment_ids"][index].astype(np.int64),
        )

    # Cache ---------------------------------------------------------------------------------------

    def _load_cache(self) -> tuple[list[SquadExample], dict[str, np.ndarray]] | None:
        """The cached examples and arrays, or None when absent or unreadable (then it is rebuilt)."""
        folder = self.cache_path
        if not folder.is_dir():
            return None
        from .. import cache_integrity

        try:
            record = json.loads((folder / _MARKER_FILE).read_text(encoding="utf-8"))
            files = record.get("files") if isinstance(record, dict) else None
        except (OSError, ValueError):
            files = None
        broken = (cache_integrity.manifest_problems(folder, files, _CACHE_FILES) if isinstance(files, dict)
                  else {_MARKER_FILE: "its integrity record is missing or unreadable"})
        if broken:
            self.notify(cache_integrity.rebuilding_text(broken, "SQuAD feature file"))
            _remove_tree(folder)
            return None
        try:
            meta = json.loads((folder / _EXAMPLES_FILE).read_text(encoding="utf-8"))
            with np.load(folder / _FEATURES_FILE, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in _ARRAYS}
            if meta["key"] != self.key or any(len(arrays[n]) != meta["feature_count"] for n in _ARRAYS):
                raise ValueError("cache does not match its key")
            examples = [SquadExample(e["id"], e["question"], [], e["answers"]) for e in meta["examples"]]
            docs = meta["docs"]
            for example, doc in zip(examples, meta["example_doc"], strict=True):
                example.doc_tokens = docs[doc]
        except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            self.notify(f"the cached SQuAD features in {folder} do not read ({type(exc).__name__}): rebuilding")
            _remove_tree(folder)
            return None
        return examples, arrays

    def _write_cache(self, examples: list[SquadExample], arrays: dict[str, np.ndarray]) -> None:
        """Write into a temporary folder beside the cache, then rename it into place."""
        parent = self.cache_path.parent
        tmp = None
        try:
            parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{self.cache_path.name}.", dir=parent))
            with open(tmp / _FEATURES_FILE, "wb") as fh:
                np.savez_compressed(fh, **arrays)
                fh.flush()
                os.fsync(fh.fileno())
            # Paragraphs are stored once and referenced by the questions that share them.
            docs: list[list[str]] = []
            doc_ids: dict[int, int] = {}
            example_doc = []
            for e in examples:
                if id(e.doc_tokens) not in doc_ids:
                    doc_ids[id(e.doc_tokens)] = len(docs)
                    docs.append(e.doc_tokens)
                example_doc.append(doc_ids[id(e.doc_tokens)])
            meta = {"key": self.key, "code_version": CODE_VERSION, "feature_count": int(len(arrays["length"])),
                    "source": str(self.json_path), "docs": docs, "example_doc": example_doc,
                    "examples": [{"id": e.qas_id, "question": e.question_text, "answers": e.answers}
                                 for e in examples]}
            with open(tmp / _EXAMPLES_FILE, "w", encoding="utf-8") as fh:
                json.dump(meta, fh)
                fh.flush()
                os.fsync(fh.fileno())
            # Written last: the size and sha256 of both files, checked whenever the cache is read.
            from .. import cache_integrity

            with open(tmp / _MARKER_FILE, "w", encoding="utf-8") as fh:
                json.dump({"files": cache_integrity.manifest(tmp, _CACHE_FILES)}, fh)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.rename(tmp, self.cache_path)
                tmp = None
            except OSError:
                # Another process finished the same cache first: its copy is as good as ours.
                if not self.cache_path.is_dir():
                    raise
        except OSError as exc:
            raise DatasetError(
                f"Could not write the SQuAD feature cache in {parent}: {exc.strerror or exc}.",
                f"make sure {parent} is writable and has space (about 20 MB for dev-v1.1), then rerun.",
            ) from exc
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)


def _read(path: Path, what: str, fix: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"Could not read the {what} {path}: {exc.strerror or exc}.", fix) from exc


def _remove_tree(folder: Path) -> None:
    """Move a broken cache aside, then delete it: nothing half-removed stays under the cache's name."""
    try:
        doomed = Path(tempfile.mkdtemp(prefix=f".{folder.name}.broken.", dir=folder.parent))
        os.rename(folder, doomed / "cache")
        shutil.rmtree(doomed, ignore_errors=True)
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)


# Synthetic ---------------------------------------------------------------------------------------

# Ids in the uncased vocab: [CLS] 101, [SEP] 102; whole words and pieces start at 1996.
_CLS_ID, _SEP_ID, _FIRST_WORD_ID, _VOCAB_SIZE = 101, 102, 1996, 30522


class SyntheticSquad:
    """Generated SQuAD-shaped features with matching generated questions. Not an MLPerf dataset.

    Each feature is its own question: ``[CLS]`` a query of ~12 tokens ``[SEP]`` a paragraph of ~150 tokens
    (log-normal, capped to fit 384) ``[SEP]``, random word ids of the real vocab's range. Words are
    spelled ``w<id>`` and each question's answer is a random 1-4 word span of its paragraph, so the
    accuracy script runs end to end (a random model scores about 0).
    """

    synthetic = True

    def __init__(self, count: int, *, seed: int = 0, max_seq_length: int = MAX_SEQ_LENGTH):
        self.count = count
        self.total = count
        self.seed = seed
        self.max_seq_length = max_seq_length
        self.description = f"synthetic SQuAD ({count} generated features, seeded random tokens and answers)"
        self._examples: list[SquadExample] | None = None

    def _layout(self, index: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(query ids, paragraph ids, answer start) of feature ``index``, from its own seeded generator."""
        rng = np.random.default_rng((self.seed, index))
        query_len = int(np.clip(round(rng.normal(12, 4)), 4, MAX_QUERY_LENGTH))
        room = self.max_seq_length - query_len - 3
        doc_len = int(np.clip(round(rng.lognormal(np.log(150), 0.45)), 20, room))
        query = rng.integers(_FIRST_WORD_ID, _VOCAB_SIZE, size=query_len)
        doc = rng.integers(_FIRST_WORD_ID, _VOCAB_SIZE, size=doc_len)
        answer_start = int(rng.integers(0, doc_len - 4))
        return query, doc, answer_start

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        query, doc, _ = self._layout(index)
        q, d = len(query), len(doc)
        ids = np.zeros(self.max_seq_length, dtype=np.int64)
        ids[0] = _CLS_ID
        ids[1:1 + q] = query
        ids[1 + q] = _SEP_ID
        ids[2 + q:2 + q + d] = doc
        ids[2 + q + d] = _SEP_ID
        n = q + d + 3
        mask = np.zeros(self.max_seq_length, dtype=np.int64)
        mask[:n] = 1
        segments = np.zeros(self.max_seq_length, dtype=np.int64)
        segments[2 + q:n] = 1
        return ids, mask, segments

    @property
    def examples(self) -> list[SquadExample]:
        if self._examples is None:
            self._examples = [self._example(i) for i in range(self.count)]
        return self._examples

    def _example(self, index: int) -> SquadExample:
        query, doc, answer_start = self._layout(index)
        words = [f"w{i}" for i in doc]
        answer_len = 1 + (index % 4)
        return SquadExample(qas_id=f"synthetic-{self.seed}-{index}", question_text=" ".join(f"w{i}" for i in query),
                            doc_tokens=words, answers=[" ".join(words[answer_start:answer_start + answer_len])])

    def feature(self, index: int) -> Feature:
        query, doc, _ = self._layout(index)
        ids, mask, segments = self.sample(index)
        offset = len(query) + 2
        tokens = [CLS, *(f"w{i}" for i in query), SEP, *(f"w{i}" for i in doc), SEP]
        return Feature(example_index=index, doc_span_index=0, tokens=tokens,
                       token_to_orig_map={offset + j: j for j in range(len(doc))},
                       token_is_max_context={offset + j: True for j in range(len(doc))},
                       input_ids=ids, input_mask=mask, segment_ids=segments)

