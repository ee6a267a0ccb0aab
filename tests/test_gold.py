"""Gold spans: alignment to the predicted tokens, skip reasons and their counts."""

import numpy
import pytest
import spacy
from gp_testing import make_examples
from spacy.tokens import Doc, Span
from spacy.training import Example

from spacy_globalpointer.gold import (
    aligned_gold,
    gold_rows,
    new_counts,
    same_tokens,
    smooth_boundaries,
)


def test_gold_fast_path_for_identical_tokens_equals_spacy_alignment():
    nlp = spacy.blank("en")
    for eg in make_examples(nlp):
        assert same_tokens(eg)
        fast = [(s.start, s.end, s.label_) for s in aligned_gold(eg, "sc", new_counts())]
        general = [
            (s.start, s.end, s.label_)
            for s in eg.get_aligned_spans_y2x(eg.reference.spans["sc"], allow_overlap=True)
        ]
        assert fast == general
    other = Example(Doc(nlp.vocab, words=["New York", "City"]), nlp.make_doc("New York City"))
    assert not same_tokens(other)


def test_spans_bounded_by_whitespace_are_counted_and_not_learned():
    nlp = spacy.blank("en")
    text = "The  Bank of England\nraised rates."
    # tokens: The, " ", Bank, of, England, "\n", raised, rates, .
    reference = nlp.make_doc(text)
    assert [t.is_space for t in reference][:6] == [False, True, False, False, False, True]
    reference.spans["sc"] = [
        Span(reference, 2, 5, "ORG"),  # Bank of England: learnable
        Span(reference, 1, 5, "ORG"),  # starts on the double space
        Span(reference, 2, 6, "ORG"),  # ends on the newline
        Span(reference, 5, 6, "ORG"),  # nothing but whitespace
    ]
    eg = Example(nlp.make_doc(text), reference)
    counts = new_counts()
    rows = gold_rows(eg, "sc", {"ORG": 0}, width=8, counts=counts)
    assert rows.tolist() == [[2, 2, 0]]
    assert counts == {"empty": 0, "misaligned": 0, "whitespace": 3, "too_long": 0}


def test_gold_rows_count_each_reason_once():
    nlp = spacy.blank("en")
    reference = nlp.make_doc("a b c d e")
    reference.spans["sc"] = [Span(reference, s, e, "X") for s, e in [(0, 5), (1, 1), (0, 1), (0, 1)]]
    counts = new_counts()
    rows = gold_rows(Example(nlp.make_doc("a b c d e"), reference), "sc", {"X": 0}, 3, counts)
    # the duplicate stays two rows: the loss counts positives as a set
    assert rows.tolist() == [[0, 0, 0], [0, 0, 0]]
    assert counts == {"empty": 1, "misaligned": 0, "whitespace": 0, "too_long": 1}
    unannotated = nlp.make_doc("a b")
    assert gold_rows(Example(nlp.make_doc("a b"), unannotated), "sc", {"X": 0}, 2, new_counts()) is None


def test_initialize_warns_when_most_gold_spans_do_not_align_with_the_tokenizer():
    """Chinese offsets under the English tokenizer: a clause is one token, so the spans
    cannot be learned; initialize says so, naming the language and tokenizer."""
    import warnings

    import pytest

    zh = spacy.blank("zh")
    text = "患者北京大学医院，发热3天"
    reference = zh.make_doc(text)
    reference.spans["sc"] = [reference.char_span(2, 6, label="ORG"), reference.char_span(2, 4, label="LOC")]
    en = spacy.blank("en")
    en.add_pipe("global_pointer")
    example = Example(en.make_doc(text), Doc(en.vocab, words=[t.text for t in reference], spaces=[False] * len(reference)))
    example.reference.spans["sc"] = [Span(example.reference, 2, 6, "ORG"), Span(example.reference, 2, 4, "LOC")]
    with pytest.warns(UserWarning, match=r"2 of 2 gold spans do not align .*language is 'en', its tokenizer spacy.tokenizer.Tokenizer"):
        en.initialize(lambda: [example])
    # with the language's own tokenizer every span aligns, and nothing is said
    zh.add_pipe("global_pointer")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zh.initialize(lambda: [Example(zh.make_doc(text), reference)])


def test_smoothing_spreads_epsilon_over_the_valid_neighbours():
    n, width = 5, 3
    real = numpy.arange(n)[:, None] + numpy.arange(width)[None, :] < n
    # Tokens 1..2 (start 1, offset 1), label 0: its distance-1 neighbours are tokens 0..2,
    # 2..2, 1..1 and 1..3, a quarter of 0.2 each.
    rows, targets = smooth_boundaries(numpy.array([[1, 1, 0]]), real, 0.2, 1)
    got = {tuple(r): round(float(t), 6) for r, t in zip(rows.tolist(), targets)}
    assert got == {(1, 1, 0): 0.8, (0, 2, 0): 0.05, (2, 0, 0): 0.05, (1, 0, 0): 0.05, (1, 2, 0): 0.05}
    # Token 1 a whitespace token (no span starts or ends there): 0..2 and 2..2 remain.
    valid = real.copy()
    valid[1, :] = False
    valid[0, 1] = False
    rows, targets = smooth_boundaries(numpy.array([[2, 0, 1]]), valid, 0.2, 1)
    # Token 2 alone (start 2, offset 0), label 1: 1..2 (starts on 1), 2..1 (empty) and
    # 3..2 (empty) are out; 2..3 stays. All of 0.2 goes there.
    assert {tuple(r): round(float(t), 6) for r, t in zip(rows.tolist(), targets)} == {
        (2, 0, 1): 0.8, (2, 1, 1): 0.2}
    # A one-token doc has no neighbour: the gold span keeps 1.
    rows, targets = smooth_boundaries(numpy.array([[0, 0, 0]]), numpy.ones((1, 1), dtype=bool), 0.3, 2)
    assert rows.tolist() == [[0, 0, 0]] and targets.tolist() == [1.0]
    # Two nested gold spans of one label, each the other's neighbour: targets add up.
    # Token 1 alone has two neighbours (0..1, 1..2), tokens 1..2 four (above).
    rows, targets = smooth_boundaries(numpy.array([[1, 0, 0], [1, 1, 0], [1, 1, 0]]), real, 0.2, 1)
    got = {tuple(r): round(float(t), 6) for r, t in zip(rows.tolist(), targets)}
    assert got[(1, 0, 0)] == 0.85 and got[(1, 1, 0)] == 0.9  # 0.8 + 0.2/4, 0.8 + 0.2/2
    assert got[(0, 1, 0)] == 0.1 and got[(1, 2, 0)] == 0.05  # the duplicate row counted once
    # Capped at 1: in a two-token doc with all three spans gold, each one-token span gives
    # all of its 0.9 to the whole (its one neighbour), which gives half of its 0.9 to each:
    # 0.1 + 0.45 = 0.55 for the halves, 0.1 + 0.9 + 0.9 -> 1 for the whole.
    rows, targets = smooth_boundaries(numpy.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]]),
                                      numpy.array([[True, True], [True, False]]), 0.9, 1)
    assert rows.tolist() == [[0, 0, 0], [0, 1, 0], [1, 0, 0]]
    assert targets.tolist() == pytest.approx([0.55, 1.0, 0.55])
    rows, targets = smooth_boundaries(numpy.array([[5, 2, 0]]), numpy.ones((12, 6), dtype=bool), 0.24, 2)
    assert len(rows) == 13 and sorted(targets.tolist())[-1] == pytest.approx(0.76)
    assert targets.sum() == pytest.approx(1.0)
