"""SQuAD v1.1 exact match and F1 for BERT, as the reference ``accuracy-squad.py`` and ``evaluate_v1.1.py`` do.

From ``mlperf_log_accuracy.json`` (one entry per feature: ``qsl_idx`` and the response bytes, float32
[384, 2] start/end logits) to answer texts with the reference post-processing: the 20 best start and
20 best end positions of each feature, kept when both lie in the paragraph span, the start has the span's
maximum context, start <= end and the answer is at most 30 tokens; the best sum of logits over the
question's features wins, and its WordPiece text is projected back onto the original paragraph text
(``get_final_text``). Then the official v1.1 scores: answers normalised (lower case, punctuation and
the articles a/an/the removed, whitespace collapsed), EM and token-overlap F1 against the best-matching
ground truth, averaged over the questions.

The questions scored are those with at least one feature in the dataset's ``count`` (all of them for a
full run, as in the reference); a question whose features are missing from the log scores 0.
"""

from __future__ import annotations

import collections
import hashlib
import json
import re
import string
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..datasets.squad import MAX_SEQ_LENGTH, Feature, SquadExample
from ..datasets.wordpiece import BasicTokenizer
from .log import Response, read_accuracy_log

N_BEST_SIZE = 20
MAX_ANSWER_LENGTH = 30
# Logits past the logged length are padded with this, as the reference does.
_PAD_LOGIT = -10000.0


class SquadDataset(Protocol):
    """What the scoring needs from :class:`~harness.datasets.squad.SquadFeatures` or ``SyntheticSquad``."""

    count: int
    synthetic: bool
    examples: list[SquadExample]

    def feature(self, index: int) -> Feature: ...


# Official evaluate-v1.1 ----------------------------------------------------------------------------

def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace."""
    s = s.lower()
    exclude = set(string.punctuation)
    s = "".join(ch for ch in s if ch not in exclude)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1_score(prediction: str, ground_truth: str) -> float:
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def exact_match_score(prediction: str, ground_truth: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def evaluate(questions: Iterable[tuple[str, list[str]]], predictions: dict[str, str]) -> dict[str, float]:
    """``{"exact_match", "f1"}`` in percent over ``questions`` ((id, ground-truth texts) pairs).

    A question without a prediction scores 0, as in the official script.
    """
    f1 = exact_match = 0.0
    total = 0
    for qas_id, ground_truths in questions:
        total += 1
        if qas_id not in predictions:
            continue
        prediction = predictions[qas_id]
        exact_match += max(exact_match_score(prediction, gt) for gt in ground_truths)
        f1 += max(f1_score(prediction, gt) for gt in ground_truths)
    if total == 0:
        return {"exact_match": 0.0, "f1": 0.0}
    return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}


# Reference post-processing ------------------------------------------------------------------------

def get_final_text(pred_text: str, orig_text: str, do_lower_case: bool = True) -> str:
    """Project the normalised WordPiece answer ``pred_text`` back onto the original text ``orig_text``.

    E.g. pred ``steve smith``, orig ``Steve Smith's`` -> ``Steve Smith``. Aligns the two character by
    character after basic tokenization of ``orig_text``; when that fails, returns ``orig_text``.
    """

    def strip_spaces(text: str) -> tuple[str, dict[int, int]]:
        ns_chars = []
        ns_to_s_map = {}
        for i, c in enumerate(text):
            if c == " ":
                continue
            ns_to_s_map[len(ns_chars)] = i
            ns_chars.append(c)
        return "".join(ns_chars), ns_to_s_map

    tok_text = " ".join(BasicTokenizer(do_lower_case=do_lower_case).tokenize(orig_text))
    start_position = tok_text.find(pred_text)
    if start_position == -1:
        return orig_text
    end_position = start_position + len(pred_text) - 1

    orig_ns_text, orig_ns_to_s_map = strip_spaces(orig_text)
    tok_ns_text, tok_ns_to_s_map = strip_spaces(tok_text)
    if len(orig_ns_text) != len(tok_ns_text):
        return orig_text
    tok_s_to_ns_map = {tok_index: i for i, tok_index in tok_ns_to_s_map.items()}

    orig_start_position = None
    if start_position in tok_s_to_ns_map:
        orig_start_position = orig_ns_to_s_map.get(tok_s_to_ns_map[start_position])
    if orig_start_position is None:
        return orig_text
    orig_end_position = None
    if end_position in tok_s_to_ns_map:
        orig_end_position = orig_ns_to_s_map.get(tok_s_to_ns_map[end_position])
    if orig_end_position is None:
        return orig_text
    return orig_text[orig_start_position:orig_end_position + 1]


def _best_indexes(logits: list[float], n_best_size: int) -> list[int]:
    """Indexes of the ``n_best_size`` largest logits, ties in index order (the reference's stable sort)."""
    return sorted(range(len(logits)), key=lambda i: logits[i], reverse=True)[:n_best_size]


def predict_answer(example: SquadExample, features: list[tuple[Feature, list[float], list[float]]], *,
                   n_best_size: int = N_BEST_SIZE, max_answer_length: int = MAX_ANSWER_LENGTH) -> str:
    """The reference's answer for one question from its features' (feature, start logits, end logits)."""
    prelim = []  # (score, feature position, start, end), in the reference's insertion order
    for position, (feature, start_logits, end_logits) in enumerate(features):
        n_tokens = len(feature.tokens)
        for start in _best_indexes(start_logits, n_best_size):
            for end in _best_indexes(end_logits, n_best_size):
                # Drop spans outside the paragraph (in the question, the markers, the padding), spans
                # whose start has more context in another span, reversed and over-long spans.
                if start >= n_tokens or end >= n_tokens:
                    continue
                if start not in feature.token_to_orig_map or end not in feature.token_to_orig_map:
                    continue
                if not feature.token_is_max_context.get(start, False):
                    continue
                if end < start or end - start + 1 > max_answer_length:
                    continue
                prelim.append((start_logits[start] + end_logits[end], position, start, end))
    if not prelim:
        # In very rare cases no span is valid; the reference then answers "empty".
        return "empty"
    # The reference builds an n-best list of distinct texts in this order and answers with its first
    # entry, which is always the best-scoring span (a stable sort keeps the first of equal scores).
    _, position, start, end = max(prelim, key=lambda p: p[0])
    feature = features[position][0]
    tok_text = " ".join(feature.tokens[start:end + 1])
    # De-tokenize WordPieces that have been split off, then clean whitespace.
    tok_text = tok_text.replace(" ##", "").replace("##", "")
    tok_text = " ".join(tok_text.strip().split())
    orig_start, orig_end = feature.token_to_orig_map[start], feature.token_to_orig_map[end]
    orig_text = " ".join(example.doc_tokens[orig_start:orig_end + 1])
    return get_final_text(tok_text, orig_text, do_lower_case=True)


def logits_from_log(entries: list[Response]) -> dict[int, tuple[list[float], list[float]]]:
    """qsl_idx -> (start logits, end logits) as float lists padded to 384; the last entry of an index wins,
    as in the reference."""
    logits: dict[int, tuple[list[float], list[float]]] = {}
    for entry in entries:
        idx = entry.qsl_idx
        pairs = entry.floats(2)[:MAX_SEQ_LENGTH]
        start = np.full(MAX_SEQ_LENGTH, _PAD_LOGIT)
        end = np.full(MAX_SEQ_LENGTH, _PAD_LOGIT)
        start[:len(pairs)] = pairs[:, 0]
        end[:len(pairs)] = pairs[:, 1]
        logits[idx] = (start.tolist(), end.tolist())
    return logits


def predictions_from_logits(dataset: SquadDataset, logits: dict[int, tuple[list[float], list[float]]], *,
                            n_best_size: int = N_BEST_SIZE,
                            max_answer_length: int = MAX_ANSWER_LENGTH) -> tuple[dict[str, str], list[int]]:
    """qas_id -> answer text for every question with a feature in the dataset's count, and those questions'
    example indexes (in order). A question none of whose features was logged answers "empty"."""
    by_example: dict[int, list[tuple[Feature, list[float], list[float]]]] = {}
    for idx in range(dataset.count):
        feature = dataset.feature(idx)
        found = by_example.setdefault(feature.example_index, [])
        if idx in logits:
            found.append((feature, *logits[idx]))
    predictions = {}
    for example_index, features in by_example.items():
        example = dataset.examples[example_index]
        predictions[example.qas_id] = predict_answer(example, features, n_best_size=n_best_size,
                                                     max_answer_length=max_answer_length)
    return predictions, list(by_example)


def squad_accuracy(log_path: Path, dataset: SquadDataset) -> dict[str, Any]:
    """EM and F1 (percent) of the responses in ``log_path``; ``value`` is F1, MLPerf's BERT metric."""
    logits = logits_from_log(read_accuracy_log(log_path, samples=dataset.count, floats_per_item=2))
    predictions, example_indexes = predictions_from_logits(dataset, logits)
    questions = [(dataset.examples[i].qas_id, dataset.examples[i].answers) for i in example_indexes]
    scores = evaluate(questions, predictions)
    return {"metric": "F1", "value": scores["f1"], "f1": scores["f1"], "exact_match": scores["exact_match"],
            "total": len(questions), "features": len(logits), "synthetic": bool(dataset.synthetic)}


def accuracy_text(result: dict[str, Any], log_path: Path) -> str:
    """``accuracy.txt``: the official evaluation's json line, then the log's sha256."""
    digest = hashlib.sha256(Path(log_path).read_bytes()).hexdigest()
    line = json.dumps({"exact_match": result["exact_match"], "f1": result["f1"]})
    return f"{line}\nhash={digest}\n"
