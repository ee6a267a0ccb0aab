"""The whitespace augmenter: rewritten texts keep every gold span, by content."""

import random

import pytest
import spacy
from gp_testing import NESTED_TRAIN, make_examples
from spacy.tokens import Doc, DocBin, Span, Token
from spacy.training import Corpus, Example
from spacy.util import registry

from spacy_globalpointer.augment import DEFAULT_VARIANTS, whitespace_variant
from spacy_globalpointer.gold import aligned_gold, new_counts


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


# Every augmented example carries the gold of the example it came from: the same spans
# (token for token on the reference), the same skips as gold.py counts them, and every
# other annotation (cats, entities with missing and outside apart, span group attrs,
# user data).

REWRITE_ALL = {"per_space": 1.0, "variants": ["\n"], "draw": lambda: 0.0}


def gold_outcome(eg, key: str = "sc"):
    """What training learns from eg under key: gold.py's skip counts and the learned
    spans (whitespace-normalised text, label)."""
    counts = new_counts()
    learned = aligned_gold(eg, key, counts)
    return counts, sorted(content(span) for span in learned)


def il2_example(nlp):
    """'IL2' is a reference token inside the tokenizer's one token 'IL2R': misaligned."""
    reference = Doc(nlp.vocab, words=["Binding", "of", "IL2", "R", "alpha", "."],
                    spaces=[True, True, False, True, False, False])
    reference.spans["sc"] = [Span(reference, 2, 3, "PROTEIN"), Span(reference, 2, 5, "PROTEIN")]
    return Example(nlp.make_doc(reference.text), reference)


def test_a_misaligned_gold_span_stays_misaligned_not_widened():
    nlp = spacy.blank("en")
    example = il2_example(nlp)
    counts, learned = gold_outcome(example)
    assert counts["misaligned"] == 1 and learned == [("IL2R alpha", "PROTEIN")]
    variant = whitespace_variant(nlp, example, **REWRITE_ALL)
    assert variant is not example and "\n" in variant.text
    # the reference keeps its spans on its own tokens, 'IL2' included
    assert [(s.text, s.label_) for s in variant.reference.spans["sc"]] == [
        ("IL2", "PROTEIN"), ("IL2R\nalpha", "PROTEIN")
    ]
    assert gold_outcome(variant) == (counts, learned)


def test_augmented_corpus_gives_the_same_gold_counts_and_spans(tmp_path):
    """Random rewrites of examples with misaligned, whitespace-bounded, empty and nested
    spans: gold.py counts and learns the same per example as without the augmenter."""
    nlp = spacy.blank("en")
    examples = [il2_example(nlp), *make_examples(nlp)]
    hello = nlp.make_doc("Hello  world here. Say  hi  now")
    hello.spans["sc"] = [hello.char_span(6, 12, "X"), Span(hello, 2, 2, "X"), hello.char_span(19, 22, "Y"),
                         hello.char_span(24, 28, "Y")]
    examples.append(Example(nlp.make_doc(hello.text), hello))
    rng = random.Random(0)
    n_changed = 0
    for _ in range(40):
        for example in examples:
            variant = whitespace_variant(nlp, example, 0.5, DEFAULT_VARIANTS, rng.random)
            n_changed += variant is not example
            assert variant.reference.text.split() == example.reference.text.split()
            assert gold_outcome(variant) == gold_outcome(example)
    assert n_changed > 100


def test_cats_are_carried_over():
    nlp = spacy.blank("en")
    example = make_examples(nlp)[0]
    example.reference.cats = {"FINANCE": 1.0, "SPORT": 0.0}
    variant = whitespace_variant(nlp, example, **REWRITE_ALL)
    assert variant is not example
    assert variant.reference.cats == {"FINANCE": 1.0, "SPORT": 0.0}


def iob(doc):
    """Each non-whitespace token's (text, IOB, type), by the token's text and place."""
    return [(t.text, t.ent_iob_, t.ent_type_) for t in doc if not t.is_space]


def test_missing_entity_annotation_stays_missing():
    nlp = spacy.blank("en")
    example = make_examples(nlp)[2]  # "Apple opened an office in New York City."
    reference = example.reference
    # "New York City" is a GPE, "Apple opened" is outside, the rest unannotated.
    reference.set_ents([Span(reference, 5, 8, "GPE")], outside=[Span(reference, 0, 2)], default="missing")
    before = iob(reference)
    assert ("office", "", "") in before and ("Apple", "O", "") in before
    variant = whitespace_variant(nlp, example, **REWRITE_ALL)
    new = variant.reference
    assert variant is not example
    assert iob(new) == before
    assert [(e.text, e.label_) for e in new.ents] == [("New\nYork\nCity", "GPE")]
    # inserted whitespace: inside the entity, part of it; beside unannotated tokens, missing
    spaces = [(t.i, t.ent_iob_) for t in new if t.is_space]
    assert [iob_ for _, iob_ in spaces] == ["O", "", "", "", "", "I", "I"]


def test_unannotated_entities_stay_unannotated():
    nlp = spacy.blank("en")
    example = make_examples(nlp)[0]
    assert not example.reference.has_annotation("ENT_IOB")
    variant = whitespace_variant(nlp, example, **REWRITE_ALL)
    assert not variant.reference.has_annotation("ENT_IOB")


def test_span_groups_keep_their_attrs_kb_ids_and_every_key():
    nlp = spacy.blank("en")
    example = make_examples(nlp)[1]  # "Bank of England raised rates."
    reference = example.reference
    reference.spans["sc"].attrs["source"] = "hand"
    reference.spans["other"] = [Span(reference, 0, 1, "BANK", kb_id="Q1", span_id="s1")]
    reference.spans["empty"] = []
    variant = whitespace_variant(nlp, example, **REWRITE_ALL)
    new = variant.reference
    assert set(new.spans) == {"sc", "other", "empty"}
    assert new.spans["sc"].attrs == {"source": "hand"}
    assert [(s.text, s.label_, s.kb_id_, s.id_) for s in new.spans["other"]] == [("Bank", "BANK", "Q1", "s1")]
    assert [content(s) for s in new.spans["sc"]] == [content(s) for s in reference.spans["sc"]]


def test_user_data_follows_the_text():
    nlp = spacy.blank("en")
    for attr, kind in (("note", Doc), ("flag", Token), ("tag2", Span)):
        if not kind.has_extension(attr):
            kind.set_extension(attr, default=None)
    example = make_examples(nlp)[1]  # "Bank of England raised rates."
    reference = example.reference
    reference._.note = "from the wire"
    reference[3]._.flag = "verb"  # "raised"
    reference[0:3]._.tag2 = "org"  # "Bank of England"
    reference.user_data["plain"] = 1
    new = whitespace_variant(nlp, example, **REWRITE_ALL).reference
    assert new._.note == "from the wire" and new.user_data["plain"] == 1
    raised = next(t for t in new if t.text == "raised")
    assert raised._.flag == "verb"
    assert new.char_span(0, len("Bank\nof\nEngland"))._.tag2 == "org"


def test_an_example_whose_gold_would_change_passes_unchanged():
    """A tokenizer that splits by the whitespace itself: 'New York' is one token, 'New\\nYork'
    three. The gold 'New' does not align with 'New York' (skipped, misaligned) but would
    with 'New', so a rewritten text would turn a skip into a positive: no rewrite."""
    nlp = spacy.blank("en")
    nlp.tokenizer.add_special_case("New York", [{"ORTH": "New York"}])
    reference = Doc(nlp.vocab, words=["in", "New", "York", "now"], spaces=[True, True, True, False])
    reference.spans["sc"] = [Span(reference, 1, 2, "GPE")]
    example = Example(nlp.make_doc(reference.text), reference)
    assert [t.text for t in example.predicted] == ["in", "New York", "now"]
    assert gold_outcome(example)[0]["misaligned"] == 1
    assert whitespace_variant(nlp, example, **REWRITE_ALL) is example
    # a space that does not touch it is still rewritten
    draws = iter([1.0, 1.0, 0.0, 0.2])  # keep the first two spaces, the third becomes "\n"
    variant = whitespace_variant(nlp, example, 0.5, DEFAULT_VARIANTS, lambda: next(draws))
    assert variant.text == "in New York\nnow"
    assert gold_outcome(variant) == gold_outcome(example)


def test_a_span_that_whitespace_would_make_too_long_passes_unchanged():
    """'New York' is 2 tokens, 'New\\nYork' 3: past a max_length of 2 it would go from
    learned to skipped (too long), so that example is not rewritten there."""
    nlp = spacy.blank("en")
    nlp.add_pipe("global_pointer", config={"model": {"max_length": 2}})
    example = make_examples(nlp, [("in New York now", [(3, 11, "GPE")])])[0]
    assert whitespace_variant(nlp, example, **REWRITE_ALL) is example
    draws = iter([0.0, 0.2, 1.0, 0.0, 0.2])  # the spaces around the span become "\n"
    variant = whitespace_variant(nlp, example, 0.5, DEFAULT_VARIANTS, lambda: next(draws))
    assert variant.text == "in\nNew York\nnow"
    assert [len(s) for s in variant.reference.spans["sc"]] == [2]
    # with a max_length the span stays within, whitespace inside it is fine
    wide = spacy.blank("en")
    wide.add_pipe("global_pointer", config={"model": {"max_length": 3}})
    assert whitespace_variant(wide, example, **REWRITE_ALL).text == "in\nNew\nYork\nnow"
