"""The whitespace augmenter: rewritten texts keep every gold span, by content."""

import random

import pytest
import spacy
from gp_testing import NESTED_TRAIN, make_examples
from spacy.tokens import DocBin, Span
from spacy.training import Corpus
from spacy.util import registry

from spacy_globalpointer.augment import whitespace_variant


def content(span) -> tuple:
    return (" ".join(span.text.split()), span.label_)


def test_every_space_rewritten_keeps_nested_spans_and_ents():
    nlp = spacy.blank("en")
    example = make_examples(nlp)[0]
    reference = example.reference
    reference.ents = [Span(reference, 2, 4, "PLACE")]  # "of Cambridge"
    variant = whitespace_variant(nlp, example, 1.0, ["\n\n"], draw=lambda: 0.0)
    new = variant.reference
    assert new.text == reference.text.replace(" ", "\n\n")
    assert variant.predicted.text == new.text
    assert [content(s) for s in new.spans["sc"]] == [content(s) for s in reference.spans["sc"]]
    assert [content(e) for e in new.ents] == [("of Cambridge", "PLACE")]
    # no gold span starts or ends on a whitespace token
    assert all(not (s[0].is_space or s[-1].is_space) for s in new.spans["sc"])


def test_spaces_next_to_a_span_stay_outside_it():
    nlp = spacy.blank("en")
    example = make_examples(nlp, [("in New York today", [(3, 11, "GPE")])])[0]
    variant = whitespace_variant(nlp, example, 1.0, ["  "], draw=lambda: 0.0)
    assert [s.text for s in variant.reference.spans["sc"]] == ["New  York"]
    assert variant.reference.text == "in  New  York  today"


def test_no_space_drawn_leaves_the_example_as_it_is():
    nlp = spacy.blank("en")
    example = make_examples(nlp)[1]
    assert whitespace_variant(nlp, example, 0.0, ["\n"], draw=lambda: 0.5) is example


def test_examples_with_token_annotation_pass_unchanged():
    nlp = spacy.blank("en")
    example = make_examples(nlp)[1]
    for token in example.reference:
        token.tag_ = "NN"
    assert whitespace_variant(nlp, example, 1.0, ["\n"], draw=lambda: 0.0) is example


def test_registered_augmenter_in_a_spacy_corpus(tmp_path):
    nlp = spacy.blank("en")
    path = tmp_path / "train.spacy"
    DocBin(docs=[eg.reference for eg in make_examples(nlp)]).to_disk(path)
    augmenter = registry.augmenters.get("spacy-globalpointer.whitespace_augmenter.v1")(
        level=1.0, per_space=0.5
    )
    random.seed(0)
    examples = list(Corpus(path, augmenter=augmenter)(nlp))
    assert len(examples) == len(NESTED_TRAIN) - 1  # spaCy's Corpus skips the empty text
    assert any("  " in eg.text or "\n" in eg.text or "\t" in eg.text for eg in examples)
    for eg, (text, spans) in zip(examples, NESTED_TRAIN):
        assert "".join(eg.text.split()) == "".join(text.split())
        expected = sorted((" ".join(text[s:e].split()), label) for s, e, label in spans)
        assert sorted(content(s) for s in eg.reference.spans["sc"]) == expected


@pytest.mark.parametrize(
    "kwargs,match",
    [({"level": 1.5}, "level"), ({"per_space": -0.1}, "per_space"), ({"variants": ["x"]}, "variants"),
     ({"variants": []}, "variants")],
)
def test_bad_settings_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        registry.augmenters.get("spacy-globalpointer.whitespace_augmenter.v1")(**kwargs)
