"""The component on messy input at prediction time and messy training data.

Each test checks the output against an expectation computed independently: the
spans a doc gets alone, the spans its raw scores imply, a naive loss, or gold sets.
"""

import random
import warnings
from typing import List, Tuple

import numpy
import pytest
import spacy
from gp_testing import NESTED_TRAIN, make_examples, train_pipeline
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example
from thinc.api import NumpyOps

from spacy_globalpointer.loss import global_pointer_loss

OPS = NumpyOps()
LONG_DOC_TOKENS = 20_000

MESSY_TEXTS = [
    "",
    "   \n\t  ",
    "Cambridge",
    "?!... ,;:",
    "😀🎉 👍🏽 🇬🇧",
    "剑桥大学位于英国。",
    "جامعة كامبريدج في إنجلترا",
    "בנק אנגליה העלה את הריבית",
    "The Bank of England 英格兰银行 بنك إنجلترا 😀 raised rates.",
    NESTED_TRAIN[0][0],
]


def as_rows(gold: set) -> numpy.ndarray:
    """Gold {(start, end_inclusive, label)} as loss rows (start, offset, label)."""
    return numpy.asarray([(i, j - i, a) for i, j, a in sorted(gold)], dtype="i").reshape(-1, 3)


def triples_and_scores(doc: Doc, key: str = "sc") -> Tuple[list, numpy.ndarray]:
    group = doc.spans[key]
    return [(s.start, s.end, s.label_) for s in group], numpy.asarray(group.attrs["scores"])


def assert_same_output(doc: Doc, expected: Tuple[list, numpy.ndarray]) -> None:
    triples, scores = triples_and_scores(doc)
    assert triples == expected[0]
    numpy.testing.assert_allclose(scores, expected[1], atol=1e-5)


@pytest.fixture(scope="module")
def messy_alone(trained_nlp) -> List[Tuple[list, numpy.ndarray]]:
    """Each messy text's spans and scores, run through the pipeline on its own."""
    nlp, _ = trained_nlp
    return [triples_and_scores(nlp(text)) for text in MESSY_TEXTS]


# ---------------------------------------------------------------- prediction time


def test_messy_texts_give_spans_their_raw_scores_imply(trained_nlp):
    nlp, _ = trained_nlp
    gp = nlp.get_pipe("global_pointer")
    for text in MESSY_TEXTS:
        doc = nlp(text)
        raw = gp.predict([nlp.make_doc(text)])[0]
        n, max_length = len(doc), gp.max_length
        assert raw.shape == (n, min(n, max_length), len(gp.labels))
        # every (i, j, label) with a real span above threshold and no whitespace token
        # at either end, by a plain loop
        expected = [
            (i, i + d + 1, gp.labels[a])
            for i in range(n)
            for d in range(raw.shape[1])
            for a in range(raw.shape[2])
            if i + d < n
            and raw[i, d, a] > gp.logit_threshold
            and not doc[i].is_space
            and not doc[i + d].is_space
        ]
        triples, scores = triples_and_scores(doc)
        assert triples == expected, text
        assert len(scores) == len(triples) and (scores > gp.threshold).all()
    assert triples_and_scores(nlp(""))[0] == []


def test_long_doc_spans_stay_within_max_length(trained_nlp, messy_alone):
    nlp, _ = trained_nlp
    gp = nlp.get_pipe("global_pointer")
    text = " ".join(["Bank of England raised rates ."] * (LONG_DOC_TOKENS // 6)) + " Thank you"
    doc = nlp(text)
    assert len(doc) == LONG_DOC_TOKENS
    triples, scores = triples_and_scores(doc)
    assert all(0 <= s < e <= len(doc) and e - s <= gp.max_length for s, e, _ in triples)
    assert triples == sorted(set(triples)) and len(scores) == len(triples)
    # the repeated sentence is recognised away from the edges as it is alone
    alone = triples_and_scores(nlp("Bank of England raised rates ."))[0]
    assert alone  # the trained model finds the ORG and the nested GPE
    middle = 6 * 1000
    window = [(s - middle, e - middle, label) for s, e, label in triples if middle <= s and e <= middle + 6]
    assert window == alone
    # the long doc in a batch with the messy texts, in the middle: same output
    docs = list(nlp.pipe(MESSY_TEXTS[:5] + [text] + MESSY_TEXTS[5:], batch_size=16))
    assert_same_output(docs[5], (triples, scores))
    for doc, expected in zip(docs[:5] + docs[6:], messy_alone):
        assert_same_output(doc, expected)


@pytest.mark.parametrize("batch_size", [1, 3, 64])
@pytest.mark.parametrize("order", ["forward", "reversed", "shuffled"])
def test_same_doc_same_output_in_any_batch_and_position(trained_nlp, messy_alone, batch_size, order):
    nlp, _ = trained_nlp
    indices = list(range(len(MESSY_TEXTS)))
    if order == "reversed":
        indices.reverse()
    elif order == "shuffled":
        random.Random(batch_size).shuffle(indices)
    docs = list(nlp.pipe([MESSY_TEXTS[i] for i in indices], batch_size=batch_size))
    for i, doc in zip(indices, docs):
        assert doc.text == MESSY_TEXTS[i]
        assert_same_output(doc, messy_alone[i])


@pytest.mark.slow
def test_mixed_batch_with_two_processes(trained_nlp, messy_alone):
    nlp, _ = trained_nlp
    docs = list(nlp.pipe(MESSY_TEXTS * 2, n_process=2, batch_size=3))
    assert [d.text for d in docs] == MESSY_TEXTS * 2
    for doc, expected in zip(docs, messy_alone * 2):
        assert_same_output(doc, expected)


def test_docs_built_from_words_without_text(trained_nlp):
    nlp, _ = trained_nlp
    words = [t.text for t in nlp.make_doc(NESTED_TRAIN[0][0])]
    from_text = triples_and_scores(nlp(NESTED_TRAIN[0][0]))
    with_default_spaces = Doc(nlp.vocab, words=words)
    no_spaces = Doc(nlp.vocab, words=words, spaces=[False] * len(words))
    empty = Doc(nlp.vocab, words=[])
    docs = list(nlp.pipe([with_default_spaces, empty, no_spaces]))
    # features are per token, so the spans do not depend on the whitespace
    assert_same_output(docs[0], from_text)
    assert_same_output(docs[2], from_text)
    assert triples_and_scores(docs[1])[0] == [] and len(docs[1]) == 0


# ---------------------------------------------------------------- training data


def example_with(nlp: Language, text: str, spans: List[Tuple[int, int, str]], key: str = "sc") -> Example:
    """spans as token offsets (start, end, label); end == start gives an empty span."""
    reference = nlp.make_doc(text)
    reference.spans[key] = [Span(reference, s, e, label=label) for s, e, label in spans]
    return Example(nlp.make_doc(text), reference)


def loss_of(nlp: Language, examples: List[Example]) -> Tuple[float, List[numpy.ndarray]]:
    gp = nlp.get_pipe("global_pointer")
    scores = gp.model.predict([eg.predicted for eg in examples])
    return gp.get_loss(examples, scores)


def test_empty_spans_are_counted_warned_and_skipped(trained_nlp):
    nlp, _ = trained_nlp
    gp = nlp.get_pipe("global_pointer")
    text = "Bank of England raised rates."
    clean = example_with(nlp, text, [(0, 3, "ORG")])
    with_empty = example_with(nlp, text, [(0, 3, "ORG"), (4, 4, "GPE"), (1, 1, "ORG")])
    before = gp.gold_span_stats["empty"]
    gp._warned.discard("empty")
    with pytest.warns(UserWarning, match=r"2 gold span\(s\) are empty"):
        loss, grads = loss_of(nlp, [with_empty])
    assert gp.gold_span_stats["empty"] == before + 2
    clean_loss, clean_grads = loss_of(nlp, [clean])
    assert loss == pytest.approx(clean_loss, rel=1e-6)
    numpy.testing.assert_allclose(grads[0], clean_grads[0], atol=1e-7)


def test_empty_spans_reported_at_initialize():
    nlp = spacy.blank("en")
    gp = nlp.add_pipe("global_pointer")
    examples = [example_with(nlp, "Bank of England raised rates.", [(0, 3, "ORG"), (2, 2, "GPE")])]
    with pytest.warns(UserWarning, match=r"1 gold span\(s\) are empty"):
        nlp.initialize(lambda: examples)
    assert gp.labels == ("GPE", "ORG")  # the empty span's label is still a label
    assert gp.gold_span_report["empty"] == 1


def test_spans_beyond_the_text_cannot_reach_the_component():
    nlp = spacy.blank("en")
    doc = nlp.make_doc("a b c d")
    with pytest.raises(IndexError, match="start 2 and end 10 for Doc of length 4"):
        Span(doc, 2, 10, label="ORG")
    assert doc.char_span(4, 100, label="ORG") is None
    # gold rows given to the loss directly are checked against the band
    scores = [numpy.zeros((4, 2, 1), dtype="f")]
    for row in ([3, 1, 0], [0, 2, 0], [0, 0, 1], [-1, 0, 0]):
        with pytest.raises(ValueError, match=r"gold\[0\] has 1 span row\(s\) outside"):
            global_pointer_loss(OPS, scores, [numpy.asarray([row, [0, 0, 0]], dtype="i")])


def test_duplicate_gold_spans_count_once(trained_nlp):
    nlp, _ = trained_nlp
    text = "The University of Cambridge is in England."
    once = example_with(nlp, text, [(1, 4, "ORG"), (3, 4, "GPE")])
    twice = example_with(nlp, text, [(1, 4, "ORG"), (3, 4, "GPE"), (1, 4, "ORG"), (3, 4, "GPE")])
    loss_once, grads_once = loss_of(nlp, [once])
    loss_twice, grads_twice = loss_of(nlp, [twice])
    assert loss_twice == pytest.approx(loss_once, rel=1e-6)
    numpy.testing.assert_allclose(grads_twice[0], grads_once[0], atol=1e-7)


MULTI_LABEL_CROSSING = [
    # "York" is both CITY and STATE (one span, two labels); "New York City" and
    # "City Hall" cross (they overlap without nesting).
    ("He saw New York City Hall today .", [(2, 5, "CITY"), (4, 6, "ORG"), (3, 4, "CITY"), (3, 4, "STATE")]),
    ("Paris Hilton left Paris .", [(0, 2, "PER"), (1, 2, "ORG"), (0, 1, "CITY"), (3, 4, "CITY"), (3, 4, "STATE")]),
    ("Nothing here .", []),
]


def test_multi_label_and_crossing_spans_are_learned_and_predicted():
    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("global_pointer")
    examples = [example_with(nlp, text, spans) for text, spans in MULTI_LABEL_CROSSING]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(60):
        nlp.update(examples, sgd=optimizer)
    for (text, spans), doc in zip(MULTI_LABEL_CROSSING, nlp.pipe(t for t, _ in MULTI_LABEL_CROSSING)):
        assert sorted(triples_and_scores(doc)[0]) == sorted(spans), text
    assert nlp.evaluate(examples)["spans_sc_f"] == 1.0


def test_reference_without_key_is_unannotated_not_empty(trained_nlp):
    """No doc.spans[key]: no loss, no gradient, not scored. Empty doc.spans[key]: all negative."""
    nlp, _ = trained_nlp
    text = "Apple opened an office in New York City."
    unannotated = Example(nlp.make_doc(text), nlp.make_doc(text))
    no_entities = example_with(nlp, text, [])
    annotated = example_with(nlp, NESTED_TRAIN[1][0], [(0, 3, "ORG"), (2, 3, "GPE")])
    loss, grads = loss_of(nlp, [unannotated, annotated])
    alone_loss, alone_grads = loss_of(nlp, [annotated])
    assert not grads[0].any()
    assert loss == pytest.approx(alone_loss, rel=1e-6)
    numpy.testing.assert_allclose(grads[1], alone_grads[0], atol=1e-7)
    empty_loss, empty_grads = loss_of(nlp, [no_entities])
    assert empty_loss > 0
    n = len(no_entities.predicted)
    valid = numpy.arange(n)[:, None] + numpy.arange(empty_grads[0].shape[1])[None, :] < n
    # every real span is a negative: the gradient pushes every score down
    assert (empty_grads[0][valid] > 0).all()
    # unannotated docs are left out of the evaluation; an empty group counts its false positives
    predicted = nlp(text)
    assert len(predicted.spans["sc"]) > 0  # "Apple" and "New York City" are found
    scores_unannotated = nlp.evaluate([unannotated, annotated])
    scores_alone = nlp.evaluate([annotated])
    assert scores_unannotated["spans_sc_p"] == scores_alone["spans_sc_p"] == 1.0
    assert nlp.evaluate([no_entities, annotated])["spans_sc_p"] < 1.0


def test_unannotated_docs_are_not_learned_as_negatives():
    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("global_pointer")
    annotated = make_examples(nlp)[:3]
    text = "Bank of England raised rates."
    unannotated = [Example(nlp.make_doc(text), nlp.make_doc(text))] * 3
    optimizer = nlp.initialize(lambda: annotated + unannotated)
    for _ in range(40):
        nlp.update(annotated + unannotated, sgd=optimizer)
    # the unannotated copy of a training text does not unlearn its entities
    doc = nlp(text)
    assert [(s.text, s.label_) for s in doc.spans["sc"]] == [("Bank of England", "ORG"), ("England", "GPE")]


def test_empty_corpus_raises_clear_error():
    nlp = spacy.blank("en")
    nlp.add_pipe("global_pointer")
    with pytest.raises(ValueError, match=r"training corpus is empty \(get_examples\(\) gave 0 examples\)"):
        nlp.initialize(lambda: [])
    with pytest.raises(ValueError, match="training corpus is empty"):
        nlp.initialize(lambda: iter(()))


# ---------------------------------------------------------------- loss at its limits


















def test_seeded_training_runs_give_identical_scores():
    texts = [text for text, _ in NESTED_TRAIN]

    def raw_scores(seed: int) -> List[numpy.ndarray]:
        nlp, _ = train_pipeline(n_updates=6, seed=seed)
        gp = nlp.get_pipe("global_pointer")
        return gp.predict([nlp.make_doc(t) for t in texts])

    first, second, other_seed = raw_scores(7), raw_scores(7), raw_scores(8)
    for a, b in zip(first, second):
        assert numpy.array_equal(a, b)
    # the seed matters, so the equality above is not trivial
    assert not all(numpy.array_equal(a, c) for a, c in zip(first, other_seed))


def test_warning_filters_do_not_hide_counts(trained_nlp):
    """Once warned, later skipped spans are still counted in gold_span_stats."""
    nlp, _ = trained_nlp
    gp = nlp.get_pipe("global_pointer")
    example = example_with(nlp, "a b c", [(1, 1, "ORG")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss_of(nlp, [example])
        before = gp.gold_span_stats["empty"]
        loss_of(nlp, [example, example])
    assert gp.gold_span_stats["empty"] == before + 2
