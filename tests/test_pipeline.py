"""The global_pointer component inside spaCy pipelines."""

import warnings

import numpy
import pytest
import spacy
from gp_testing import NESTED_TRAIN, make_examples, spans_and_scores, train_pipeline
from spacy.training import Example
from spacy.util import registry

NESTED_EXPECTED = [
    ("University of Cambridge", "ORG"),
    ("Cambridge", "GPE"),
    ("England", "GPE"),
]




@pytest.mark.parametrize("efficient", [False, True])
def test_overfits_nested_spans_and_round_trips(efficient, tmp_path):
    nlp, examples = train_pipeline({"model": {"efficient": efficient}}, n_updates=50)
    assert nlp.evaluate(examples)["spans_sc_f"] == 1.0
    doc = nlp(NESTED_TRAIN[0][0])
    assert [(s.text, s.label_) for s in doc.spans["sc"]] == NESTED_EXPECTED
    assert (doc.spans["sc"].attrs["scores"] > 0.5).all()  # probabilities above the threshold
    assert len(nlp("").spans["sc"]) == 0
    nlp.to_disk(tmp_path / "model")
    reloaded = spacy.load(tmp_path / "model")
    texts = [text for text, _ in NESTED_TRAIN]
    for before, after in zip(nlp.pipe(texts), reloaded.pipe(texts)):
        spans_before, scores_before = spans_and_scores(before)
        spans_after, scores_after = spans_and_scores(after)
        assert spans_before == spans_after
        numpy.testing.assert_allclose(scores_before, scores_after, atol=1e-6)
    via_bytes = spacy.blank("en")
    via_bytes.add_pipe("global_pointer", config={"model": {"efficient": efficient}})
    via_bytes.from_bytes(nlp.to_bytes())
    spans_bytes, scores_bytes = spans_and_scores(via_bytes(texts[0]))
    assert spans_bytes == spans_and_scores(doc)[0]
    numpy.testing.assert_allclose(scores_bytes, doc.spans["sc"].attrs["scores"], atol=1e-6)


def test_batch_invariance(trained_nlp):
    nlp, _ = trained_nlp
    text = NESTED_TRAIN[1][0]
    alone = nlp(text)
    longer = ["word " * 300, "Another rather long sentence about the Bank of England in London. " * 20]
    docs = list(nlp.pipe([longer[0], text, longer[1]], batch_size=3))
    spans_alone, scores_alone = spans_and_scores(alone)
    spans_batched, scores_batched = spans_and_scores(docs[1])
    assert spans_alone == spans_batched
    numpy.testing.assert_allclose(scores_alone, scores_batched, atol=1e-5)
    # raw scores too, not only those above threshold
    raw_alone = nlp.get_pipe("global_pointer").predict([nlp.make_doc(text)])[0]
    raw_batch = nlp.get_pipe("global_pointer").predict([nlp.make_doc(t) for t in [longer[0], text]])[1]
    assert raw_alone.shape == raw_batch.shape
    numpy.testing.assert_allclose(raw_alone, raw_batch, atol=1e-5)


def test_empty_whitespace_and_mixed_batches(trained_nlp):
    nlp, _ = trained_nlp
    texts = ["", "   ", "\n", NESTED_TRAIN[0][0], "", "x"]
    docs = list(nlp.pipe(texts, batch_size=4))
    assert [len(d.spans["sc"]) for d in docs][:3] == [0, 0, 0]
    assert spans_and_scores(docs[3])[0] == spans_and_scores(nlp(texts[3]))[0]
    assert len(docs[0].spans["sc"].attrs["scores"]) == 0
    assert list(nlp.pipe(["", ""]))[0].spans["sc"].attrs["scores"].shape == (0,)


@pytest.mark.slow
def test_multiprocess_pipe_matches_single_process(trained_nlp):
    nlp, _ = trained_nlp
    texts = [text for text, _ in NESTED_TRAIN] * 4
    single = [spans_and_scores(d) for d in nlp.pipe(texts)]
    multi = [spans_and_scores(d) for d in nlp.pipe(texts, n_process=2, batch_size=3)]
    assert [s for s, _ in single] == [s for s, _ in multi]
    for (_, a), (_, b) in zip(single, multi):
        numpy.testing.assert_allclose(a, b, atol=1e-6)


def test_labels_from_initialize_argument_and_add_label_rules():
    nlp = spacy.blank("en")
    gp = nlp.add_pipe("global_pointer")
    assert gp.add_label("ORG") == 1 and gp.add_label("ORG") == 0
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    assert gp.labels == ("ORG", "GPE")  # ORG added first, then the data's other labels
    with pytest.raises(ValueError, match="'LOC'.*after initialization"):
        gp.add_label("LOC")


def test_explicit_labels_keep_their_order():
    nlp = spacy.blank("en")
    gp = nlp.add_pipe("global_pointer")
    examples = make_examples(nlp)
    gp.initialize(lambda: examples, nlp=nlp, labels=["PER", "ORG", "GPE"])
    assert gp.labels == ("PER", "ORG", "GPE")
    assert gp.model.get_ref("head").get_dim("nO") == 3


def test_no_labels_raises_clear_error():
    nlp = spacy.blank("en")
    nlp.add_pipe("global_pointer")
    unlabelled = [Example(nlp.make_doc("No spans here."), nlp.make_doc("No spans here."))]
    with pytest.raises(ValueError, match="has no labels"):
        nlp.initialize(lambda: unlabelled)


def test_unknown_label_at_update_raises():
    nlp = spacy.blank("en")
    nlp.add_pipe("global_pointer")
    optimizer = nlp.initialize(lambda: make_examples(nlp))
    bad = make_examples(nlp, [("Paris is nice.", [(0, 5, "CITY")])])
    with pytest.raises(ValueError, match=r"\['CITY'\]"):
        nlp.update(bad, sgd=optimizer)


def test_misaligned_gold_spans_are_counted_and_warned():
    nlp = spacy.blank("en")
    gp = nlp.add_pipe("global_pointer")
    text = "New York City is big."
    reference = nlp.make_doc(text)
    reference.spans["sc"] = [reference.char_span(0, 13, label="GPE"), reference.char_span(4, 8, label="GPE")]
    # the predicted doc is tokenised differently: "New York" is one token, so "York" cannot align
    predicted = spacy.tokens.Doc(nlp.vocab, words=["New York", "City", "is", "big", "."], spaces=[True, True, True, False, False])
    example = Example(predicted, reference)
    with pytest.warns(UserWarning, match="1 gold span"):
        optimizer = nlp.initialize(lambda: [example])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nlp.update([example], sgd=optimizer)
        nlp.update([example], sgd=optimizer)
    assert sum("do not align" in str(w.message) for w in caught) == 1
    assert gp.gold_span_stats["misaligned"] == 2


def test_annotate_ents_writes_best_non_overlapping_spans():
    nlp, _ = train_pipeline({"annotate_ents": True}, n_updates=50)
    doc = nlp(NESTED_TRAIN[0][0])
    assert len(doc.spans["sc"]) == 3
    ents = [(e.text, e.label_) for e in doc.ents]
    assert ("England", "GPE") in ents
    # of the nested pair, exactly one survives
    assert len([e for e in ents if "Cambridge" in e[0]]) == 1


def test_custom_spans_key_and_threshold():
    nlp, examples = train_pipeline({"spans_key": "entities"}, n_updates=50)
    doc = nlp(NESTED_TRAIN[0][0])
    assert "sc" not in doc.spans
    assert [(s.text, s.label_) for s in doc.spans["entities"]] == NESTED_EXPECTED
    assert nlp.evaluate(examples)["spans_entities_f"] == 1.0
    nlp.get_pipe("global_pointer").cfg["threshold"] = 1.0
    assert len(nlp(NESTED_TRAIN[0][0]).spans["entities"]) == 0










def test_registered_scorer_gives_spancat_scores(trained_nlp):
    nlp, examples = trained_nlp
    scorer = registry.get("scorers", "spacy-globalpointer.spans_scorer.v1")()
    predicted = [Example(nlp(eg.reference.text), eg.reference) for eg in examples]
    scores = scorer(predicted, spans_key="sc", labels=["GPE", "ORG"])
    assert scores["spans_sc_f"] == 1.0 and set(scores["spans_sc_per_type"]) == {"GPE", "ORG"}
    assert "ents_f" not in scores




# ---------------------------------------------------------------- whitespace tokens


def test_no_predicted_span_starts_or_ends_on_whitespace(trained_nlp):
    nlp, _ = trained_nlp
    gp = nlp.get_pipe("global_pointer")
    doc = nlp.make_doc("The  University of\nCambridge  ")
    n = len(doc)
    # hand-made scores: every span of every label is above threshold
    scores = numpy.full((n, n, len(gp.labels)), 5.0, dtype="f")
    gp.set_annotations([doc], [scores])
    expected = [
        (i, j, label)
        for i in range(n)
        for j in range(i + 1, n + 1)
        for label in gp.labels
        if not doc[i].is_space and not doc[j - 1].is_space
    ]
    assert [(s.start, s.end, s.label_) for s in doc.spans["sc"]] == expected
    assert len(doc.spans["sc"].attrs["scores"]) == len(expected)


MESSY_VARIANTS = {
    "one double space": lambda text: text.replace(" ", "  ", 1),
    "one newline": lambda text: text.replace(" ", "\n", 1),
    "all spaces doubled": lambda text: text.replace(" ", "  "),
}


@pytest.mark.parametrize("variant", sorted(MESSY_VARIANTS))
def test_messy_whitespace_never_bounds_a_span_of_a_trained_model(trained_nlp, variant):
    nlp, _ = trained_nlp
    for text, _ in NESTED_TRAIN:
        doc = nlp(MESSY_VARIANTS[variant](text))
        assert all(not (s[0].is_space or s[-1].is_space) for s in doc.spans["sc"]), doc.text


# ---------------------------------------------------------------- settings come from the config


























# ---------------------------------------------------------------- non-finite scores


def poison_encoder(nlp) -> None:
    tok2vec = nlp.get_pipe("global_pointer").model.get_ref("tok2vec")
    for node in tok2vec.walk():
        for name in node.param_names:
            if node.has_param(name):
                node.set_param(name, node.get_param(name) * numpy.nan)
                return


def test_nan_scores_stop_the_update_before_any_weight_changes():
    nlp, examples = train_pipeline(n_updates=2)
    optimizer = nlp.resume_training()
    poison_encoder(nlp)
    head = nlp.get_pipe("global_pointer").model.get_ref("head")
    before = head.to_bytes()
    with pytest.raises(ValueError, match=r"\d+ of \d+ span scores in this batch are not finite"):
        nlp.update(examples, sgd=optimizer)
    assert head.to_bytes() == before


def test_nan_scores_at_prediction_warn_with_a_count():
    nlp, _ = train_pipeline(n_updates=2)
    poison_encoder(nlp)
    doc = nlp.make_doc("Bank of England raised rates.")
    n_labels = len(nlp.get_pipe("global_pointer").labels)
    with pytest.warns(UserWarning, match=rf"{len(doc) * len(doc) * n_labels} span score\(s\) in this batch are not finite"):
        doc = nlp(doc)
    assert len(doc.spans["sc"]) == 0


# ---------------------------------------------------------------- doc.ents beside spaCy's components


def ents_pipeline(before: bool, overwrite: bool):
    nlp, _ = train_pipeline({"annotate_ents": True, "overwrite_ents": overwrite}, n_updates=50)
    ruler = nlp.add_pipe("entity_ruler", first=before, config={"overwrite_ents": False})
    ruler.add_patterns([{"label": "PLACE", "pattern": "Cambridge"}, {"label": "VERB", "pattern": "is"}])
    return nlp


def test_annotate_ents_keeps_entities_set_before_it():
    doc = ents_pipeline(before=True, overwrite=False)(NESTED_TRAIN[0][0])
    # the ruler's entities stay; of ours only those overlapping none of them are added
    assert [(e.text, e.label_) for e in doc.ents] == [("Cambridge", "PLACE"), ("is", "VERB"), ("England", "GPE")]


def test_annotate_ents_overwrite_replaces_entities_set_before_it():
    doc = ents_pipeline(before=True, overwrite=True)(NESTED_TRAIN[0][0])
    ents = [(e.text, e.label_) for e in doc.ents]
    assert ("is", "VERB") not in ents and ("England", "GPE") in ents


def test_factory_declares_doc_ents_and_evaluate_scores_them():
    meta = spacy.language.Language.get_factory_meta("global_pointer")
    assert "doc.ents" in meta.assigns and "doc.spans" in meta.assigns
    # the standard head, whose 50 updates rank each nested pair as the assertions expect
    nlp, examples = train_pipeline({"annotate_ents": True, "model": {"efficient": False}}, n_updates=50)
    for eg in examples:
        eg.reference.ents = [s for s in eg.reference.spans["sc"] if s.label_ == "GPE"]
    scores = nlp.evaluate(examples)
    assert scores["spans_sc_f"] == 1.0
    # the ORG/GPE nested pair: the higher-scoring span wins doc.ents, so ents are not perfect
    assert scores["ents_p"] is not None and scores["ents_r"] == 1.0
    assert "ents_f" not in train_pipeline(n_updates=1)[0].evaluate(examples)










