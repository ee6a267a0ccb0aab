"""Error breakdown of the held-out predictions (scripts/span_metrics.py error_breakdown):
errors by kind and P/R/F by span length, on hand-made docs with every count worked out by
hand in the comments."""

import json

import pytest

from scripts import span_metrics
from scripts.span_metrics import error_breakdown, length_bucket, span_length

# Word offsets:  IL-2 0-4, gene 5-9, expression 10-20, requires 21-29, NF-kappa 30-38,
# B 39-40, in 41-43, T 44-45, cells 46-51, . 52-53
EN1 = "IL-2 gene expression requires NF-kappa B in T cells ."
EN1_GOLD = {
    (0, 9, "DNA"),          # "IL-2 gene", 2 words: found
    (0, 4, "protein"),      # "IL-2", 1 word, nested in the DNA span: predicted as DNA -> FN type
    (30, 40, "protein"),    # "NF-kappa B", 2 words: predicted shorter -> FN boundary
    (44, 51, "cell_type"),  # "T cells", 2 words: "in T cells" as cell_line -> FN boundary_and_type
}
EN1_PRED = {
    (0, 9, "DNA"),           # true positive, 2 words
    (0, 4, "DNA"),           # gold protein at these offsets -> FP type (before boundary: it also
                             # overlaps the gold DNA span "IL-2 gene"), 1 word
    (30, 38, "protein"),     # "NF-kappa": inside gold protein -> FP boundary, 1 word
    (41, 51, "cell_line"),   # "in T cells": overlaps gold cell_type only -> FP boundary_and_type, 3 words
    (10, 20, "protein"),     # "expression": overlaps no gold span -> FP spurious, 1 word
}
# "the " 0-4; "human immunodeficiency virus type 1" 4-39 (5 words); " long terminal repeat
# region" to 67; " binds " 67-74; "Sp1" 74-77.
EN2 = "the human immunodeficiency virus type 1 long terminal repeat region binds Sp1"
EN2_GOLD = {
    (4, 67, "DNA"),      # 9 words, contains the virus span; only the virus span (another label)
                         # is predicted over it -> FN boundary_and_type
    (4, 39, "virus"),    # 5 words: found
    (74, 77, "protein"),  # "Sp1", 1 word, no prediction overlaps it -> FN missed
}
EN2_PRED = {(4, 39, "virus")}

# One character a token: 我0 在1 北2 京3 大4 学5 见6 到7 张8 三9
ZH = "我在北京大学见到张三"
ZH_GOLD = {(2, 6, "ORG"), (8, 10, "PER")}  # 北京大学 (4 characters) found; 张三 (2) missed
ZH_PRED = {(2, 6, "ORG"), (0, 1, "PER")}   # 我 (1 character): overlaps nothing -> FP spurious


def _bucket(tp, predicted, gold, p, r, f):
    return {"tp": tp, "predicted": predicted, "gold": gold, "p": p, "r": r, "f": f}


def test_span_length_counts_words_in_english_and_characters_in_chinese():
    assert span_length(EN2, 4, 67, "en") == 9
    assert span_length(EN1, 0, 4, "en") == 1
    assert span_length(ZH, 2, 6, "zh") == 4
    assert span_length(ZH, 2, 6, "en") == 1  # no whitespace: one word
    assert span_length("北京 大学", 0, 5, "zh") == 4  # the space is no token
    assert span_length("北京 大学", 0, 5, "en") == 2
    assert span_length("a  b", 1, 3, "en") == 1  # whitespace only: still a span of one


@pytest.mark.parametrize("n, bucket", [(1, "1-2"), (2, "1-2"), (3, "3-5"), (5, "3-5"), (6, "6-10"),
                                       (10, "6-10"), (11, "11-20"), (20, "11-20"), (21, "21+"), (200, "21+")])
def test_length_buckets(n, bucket):
    assert length_bucket(n) == bucket


def test_length_bucket_refuses_empty_spans():
    with pytest.raises(ValueError):
        length_bucket(0)


def test_error_kinds_with_nested_gold_in_english():
    out = error_breakdown([EN1_PRED, EN2_PRED], [EN1_GOLD, EN2_GOLD], [EN1, EN2], "en")
    errors = out["errors"]
    # tp: "IL-2 gene" and the virus span; 5 + 1 predictions; 4 + 3 gold spans.
    assert (errors["tp"], errors["predicted"], errors["gold"]) == (2, 6, 7)
    assert errors["fp"] == {"total": 4, "type": 1, "boundary": 1, "boundary_and_type": 1, "spurious": 1}
    assert errors["fn"] == {"total": 5, "type": 1, "boundary": 1, "boundary_and_type": 2, "missed": 1}
    assert json.loads(json.dumps(out)) == out


def test_p_r_f_by_span_length_in_words():
    buckets = error_breakdown([EN1_PRED, EN2_PRED], [EN1_GOLD, EN2_GOLD], [EN1, EN2], "en")["by_length"]
    assert buckets["unit"] == "words"
    assert list(buckets["buckets"]) == ["1-2", "3-5", "6-10", "11-20", "21+"]
    assert buckets["buckets"] == {
        # predicted: "IL-2" (DNA), "NF-kappa", "expression", "IL-2 gene" (tp); gold: "IL-2"
        # (protein), "Sp1", "IL-2 gene", "NF-kappa B", "T cells": P 1/4, R 1/5, F 2/9
        "1-2": _bucket(1, 4, 5, 0.25, 0.2, pytest.approx(2 / 9)),
        # predicted "in T cells" and the virus span (tp); gold: the virus span
        "3-5": _bucket(1, 2, 1, 0.5, 1.0, 2 / 3),
        "6-10": _bucket(0, 0, 1, 0.0, 0.0, 0.0),  # the 9-word DNA span, not found
        "11-20": _bucket(0, 0, 0, 0.0, 0.0, 0.0),
        "21+": _bucket(0, 0, 0, 0.0, 0.0, 0.0),
    }


def test_chinese_spans_are_measured_in_characters():
    out = error_breakdown([ZH_PRED], [ZH_GOLD], [ZH], "zh")
    assert out["errors"]["fp"] == {"total": 1, "type": 0, "boundary": 0, "boundary_and_type": 0, "spurious": 1}
    assert out["errors"]["fn"] == {"total": 1, "type": 0, "boundary": 0, "boundary_and_type": 0, "missed": 1}
    buckets = out["by_length"]["buckets"]
    assert out["by_length"]["unit"] == "characters"
    assert buckets["1-2"] == _bucket(0, 1, 1, 0.0, 0.0, 0.0)  # 我 predicted, 张三 gold
    assert buckets["3-5"] == _bucket(1, 1, 1, 1.0, 1.0, 1.0)  # 北京大学
    # Read as English the whole sentence is one word: every span in bucket 1-2, tp 1 of 2 and 2.
    assert error_breakdown([ZH_PRED], [ZH_GOLD], [ZH], "en")["by_length"]["buckets"]["1-2"] == \
        _bucket(1, 2, 2, 0.5, 0.5, 0.5)


def test_fp_boundary_needs_the_same_label_and_adjacent_spans_do_not_overlap():
    text = "aa bb cc"
    gold = {(0, 5, "A")}
    # (3, 8, "A") shares "bb" with the gold span: boundary; (5, 8, "A") only touches its end
    # (offset 5): no overlap, spurious; (0, 5, "B") same offsets: type.
    pred = {(3, 8, "A"), (5, 8, "A"), (0, 5, "B")}
    errors = error_breakdown([pred], [gold], [text], "en")["errors"]
    assert errors["fp"] == {"total": 3, "type": 1, "boundary": 1, "boundary_and_type": 0, "spurious": 1}
    # The gold span has a prediction at its offsets with another label: type before boundary.
    assert errors["fn"] == {"total": 1, "type": 1, "boundary": 0, "boundary_and_type": 0, "missed": 0}


def test_counts_agree_with_score_predictions():
    preds, golds = [EN1_PRED, EN2_PRED], [EN1_GOLD, EN2_GOLD]
    errors = error_breakdown(preds, golds, [EN1, EN2], "en")["errors"]
    overall = span_metrics.score_predictions(preds, golds)["overall"]
    assert (errors["tp"], errors["predicted"], errors["gold"]) == (overall["tp"], overall["predicted"], overall["gold"])


# --- python -m bench analyse: the breakdown added to finished runs' result.json ------------------


def _pipeline(tmp_path, name, pipe, patterns):
    """A deterministic stand-in for a trained model-best: a ruler that predicts given spans
    (span_ruler into doc.spans["sc"] for a span system, entity_ruler into doc.ents for a
    flat one)."""
    import spacy

    nlp = spacy.blank("en")
    config = {"spans_key": "sc"} if pipe == "span_ruler" else {}
    nlp.add_pipe(pipe, config=config).add_patterns([{"label": lab, "pattern": p} for lab, p in patterns])
    nlp.to_disk(tmp_path / name)
    return tmp_path / name


def _run(runs, dataset, system, model=None, **test):
    import shutil

    rdir = runs / dataset / "cnn" / system / "seed0"
    rdir.mkdir(parents=True)
    result = {"dataset": dataset, "encoder": "cnn", "system": system, "seed": 0,
              "flat": system in ("crf", "ner"), "heldout_split": "test", "steps": 300,
              "test": {"per_type": {}, "nested_gold": {"found": 1, "spans": 3, "recall": 1 / 3}, **test},
              "curve": [{"step": 150, "dev": {"f": 0.25}}], "wall_seconds": 12.5}
    (rdir / "result.json").write_text(json.dumps(result, indent=2), encoding="utf8")
    if model is not None:
        shutil.copytree(model, rdir / "model-best")
    return rdir, result


def _without_breakdown(result):
    out = json.loads(json.dumps(result))
    out["test"].pop("errors", None)
    out["test"].pop("by_length", None)
    for role in ("inner_spans", "outer_spans", "flat_spans"):
        out["test"].pop(role, None)
    return out


def test_analyse_adds_the_breakdown_to_result_json_and_changes_nothing_else(tmp_path, monkeypatch):
    pytest.importorskip("torchcrf")  # analyse registers the CRF factory
    import spacy
    from spacy.tokens import DocBin
    from typer.testing import CliRunner

    from bench import analysis, cli

    monkeypatch.setattr(analysis, "set_threads", lambda threads: None)  # keep this process's threads
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    nlp = spacy.blank("en")
    docbin = DocBin()
    for text, gold in ((EN1, EN1_GOLD), (EN2, EN2_GOLD)):
        doc = nlp.make_doc(text)
        doc.spans["sc"] = [doc.char_span(s, e, label=lab) for s, e, lab in sorted(gold)]
        docbin.add(doc)
    docbin.to_disk(corpus / "test.spacy")
    (corpus / "stats.json").write_text(json.dumps({"dataset": "genia", "lang": "en"}), encoding="utf8")

    # Predicts EN1_PRED and EN2_PRED exactly (nested and overlapping spans kept).
    spans_model = _pipeline(tmp_path, "spans", "span_ruler", [
        ("DNA", "IL-2 gene"), ("DNA", "IL-2"), ("protein", "NF-kappa"), ("cell_line", "in T cells"),
        ("protein", "expression"), ("virus", "human immunodeficiency virus type 1")])
    # Flat: "IL-2 gene" (tp), "NF-kappa" (boundary), "in T cells" (boundary + type), "Sp1" (tp).
    flat_model = _pipeline(tmp_path, "flat", "entity_ruler", [
        ("DNA", "IL-2 gene"), ("protein", "NF-kappa"), ("cell_line", "in T cells"), ("protein", "Sp1")])
    runs = tmp_path / "runs"
    overall = {"tp": 2, "predicted": 6, "gold": 7, "p": 1 / 3, "r": 2 / 7, "f": 4 / 13}
    span_dir, span_result = _run(runs, "genia", "global_pointer", spans_model, overall=overall, outermost=overall)
    # The stored outermost scores disagree with what the model predicts now (tp 2): warned, still written.
    flat_dir, flat_result = _run(runs, "genia", "crf", flat_model, overall=overall,
                                 outermost={"tp": 3, "predicted": 4, "gold": 5})
    _run(runs, "genia", "spancat", None, overall=overall, outermost=overall)  # no model-best
    _run(runs, "weibo", "crf", flat_model, overall=overall, outermost=overall)  # not this corpus

    cli_app = cli.app
    cli = CliRunner()
    out = cli.invoke(cli_app, ["analyse", "--all", str(runs), "--corpus-dir", str(corpus)])
    assert out.exit_code == 0, out.output
    assert f"{runs / 'genia/cnn/spancat/seed0'}: no model-best/, skipped" in out.output
    assert f"{runs / 'weibo/cnn/crf/seed0'}: a weibo run, but {corpus} holds genia, skipped" in out.output
    assert f"{flat_dir}: WARNING predictions differ" in out.output
    assert "2 analysed, 2 skipped" in out.output

    spans = json.loads((span_dir / "result.json").read_text(encoding="utf8"))
    assert _without_breakdown(spans) == span_result
    assert spans["test"]["inner_spans"] == {"recall": 0.5, "found": 1, "spans": 2}  # as in test_recall_of_inner_...
    # The counts worked out in test_error_kinds_with_nested_gold_in_english.
    assert spans["test"]["errors"] == {
        "tp": 2, "predicted": 6, "gold": 7, "gold_spans": "all",
        "fp": {"total": 4, "type": 1, "boundary": 1, "boundary_and_type": 1, "spurious": 1},
        "fn": {"total": 5, "type": 1, "boundary": 1, "boundary_and_type": 2, "missed": 1}}
    assert spans["test"]["by_length"]["buckets"]["1-2"]["f"] == pytest.approx(2 / 9)

    flat = json.loads((flat_dir / "result.json").read_text(encoding="utf8"))
    assert _without_breakdown(flat) == flat_result
    # Against the outermost gold spans: "IL-2 gene", "NF-kappa B", "T cells", the 9-word DNA
    # span, "Sp1" (5, not 7). FN: "NF-kappa B" boundary, "T cells" boundary + type, the DNA
    # span missed (nothing predicted over it).
    assert flat["test"]["errors"] == {
        "tp": 2, "predicted": 4, "gold": 5, "gold_spans": "outermost",
        "fp": {"total": 2, "type": 0, "boundary": 1, "boundary_and_type": 1, "spurious": 0},
        "fn": {"total": 3, "type": 0, "boundary": 1, "boundary_and_type": 1, "missed": 1}}
    buckets = flat["test"]["by_length"]["buckets"]
    # 1-2 words: predicted "IL-2 gene" (tp), "NF-kappa", "Sp1" (tp); gold "IL-2 gene",
    # "NF-kappa B", "T cells", "Sp1": P 2/3, R 1/2, F 4/7.
    assert buckets["1-2"] == _bucket(2, 3, 4, pytest.approx(2 / 3), 0.5, pytest.approx(4 / 7))
    assert buckets["6-10"] == _bucket(0, 0, 1, 0.0, 0.0, 0.0)

    # Run again: already there, skipped and left as it is; --force recomputes.
    before = (span_dir / "result.json").read_bytes()
    out = cli.invoke(cli_app, ["analyse", str(span_dir), "--corpus-dir", str(corpus)])
    assert "already analysed, skipped (--force to recompute)" in out.output
    assert (span_dir / "result.json").read_bytes() == before
    stale = json.loads(before)
    stale["test"]["errors"]["fp"]["spurious"] = 99
    (span_dir / "result.json").write_text(json.dumps(stale), encoding="utf8")
    out = cli.invoke(cli_app, ["analyse", str(span_dir), "--corpus-dir", str(corpus), "--force"])
    assert out.exit_code == 0, out.output
    assert json.loads((span_dir / "result.json").read_text(encoding="utf8"))["test"]["errors"]["fp"]["spurious"] == 1
    assert not list(span_dir.glob("*.tmp"))

    assert cli.invoke(cli_app, ["analyse"]).exit_code != 0  # nothing to analyse


def test_recall_of_inner_outer_and_flat_gold_spans():
    roles = span_metrics.role_recall([EN1_PRED, EN2_PRED], [EN1_GOLD, EN2_GOLD])
    # inner: "IL-2" (inside "IL-2 gene": predicted as DNA, not found), the virus span (found);
    # outer: "IL-2 gene" (found), the 9-word DNA span (not found); flat: "NF-kappa B",
    # "T cells", "Sp1" (none found).
    assert roles == {"inner_spans": {"recall": 0.5, "found": 1, "spans": 2},
                     "outer_spans": {"recall": 0.5, "found": 1, "spans": 2},
                     "flat_spans": {"recall": 0.0, "found": 0, "spans": 3}}


def test_a_span_inside_and_containing_others_is_both_and_same_offsets_do_not_nest():
    gold = {(0, 10, "A"), (0, 6, "B"), (0, 3, "C"), (0, 3, "D"), (12, 15, "A")}
    roles = span_metrics.nesting_roles(gold)
    assert roles[(0, 10, "A")] == (False, True)
    assert roles[(0, 6, "B")] == (True, True)
    assert roles[(0, 3, "C")] == (True, False)  # D at the same offsets neither holds nor contains it
    assert roles[(12, 15, "A")] == (False, False)
    assert span_metrics.role_recall([set()], [gold])["flat_spans"] == {"recall": 0.0, "found": 0, "spans": 1}
    no_roles = span_metrics.role_recall([set()], [{(0, 3, "A")}])
    assert no_roles["inner_spans"] == {"recall": None, "found": 0, "spans": 0}


def test_the_held_out_breakdown_counts_roles_against_all_gold_spans_on_nested_data_only():
    from bench.corpus import heldout_breakdown

    nested = heldout_breakdown([EN1_PRED, EN2_PRED], [EN1_GOLD, EN2_GOLD], [EN1, EN2], "en", flat=True)
    # A flat system is scored against the outermost spans, but its inner-span recall is
    # over every gold span: the virus span it found counts.
    assert nested["errors"]["gold_spans"] == "outermost"
    assert nested["inner_spans"] == {"recall": 0.5, "found": 1, "spans": 2}
    flat_data = heldout_breakdown([ZH_PRED], [ZH_GOLD], [ZH], "zh", flat=False)
    assert "inner_spans" not in flat_data and "outer_spans" not in flat_data
