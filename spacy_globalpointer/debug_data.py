"""``debug-data``: what a ``global_pointer`` component will make of its training data.

``spacy debug data`` says nothing about the spans of this factory, so before a long run
this reports, for the component's spans key in the train and dev corpora: spans per label,
span lengths in tokens against the model's ``max_length``, nested and crossing pairs, and
the spans training skips (see :data:`spacy_globalpointer.gold.SKIP_REASONS`), with a few
examples of each problem. The analysis (:mod:`spacy_globalpointer.corpus_analysis`) works
on any iterable of ``Example``s and returns a plain dict; this module reads the corpora the
config's ``[training]`` names, as written (an augmenter in the config is switched off for
the report, so that it describes the user's files and two runs give the same report), and
writes and prints the report. Problems that make training fail (an
empty train corpus, train labels that ``[initialize.components]`` does not list, no labels
at all) are listed under ``fatal``, and the command then exits with status 1.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, TextIO, Tuple

from spacy.language import Language
from spacy.training import Example
from spacy.training.augment import dont_augment
from thinc.api import Config, ConfigValidationError

from .band import values_per_cell
from .corpus_analysis import analyse_corpus
from .gold import SKIP_REASONS, SPAN_LENGTH_COVERAGE

FACTORY = "global_pointer"


class DebugDataError(ValueError):
    """The config, the component or the corpora cannot be read as asked."""


def find_component(nlp: Language, name: Optional[str]) -> str:
    """``name``, checked to be a global_pointer component, or the pipeline's only one."""
    names = [n for n in nlp.component_names if nlp.get_pipe_meta(n).factory == FACTORY]
    listed = f"{FACTORY} components: {', '.join(names) or 'none'}"
    if name is None and len(names) == 1:
        return names[0]
    if name is None:
        raise DebugDataError(f"choose a {FACTORY} component with --component ({listed})")
    if name not in names:
        raise DebugDataError(f"{name!r} is not a {FACTORY} component of the pipeline ({listed})")
    return name


def debug_data(
    config_path: Path, overrides: Optional[Dict[str, Any]] = None, component: Optional[str] = None
) -> Dict[str, Any]:
    """Build the pipeline of a training config and report on its train and dev corpora."""
    from spacy.util import load_config, load_model_from_config, resolve_dot_names

    if not Path(config_path).is_file():
        raise DebugDataError(f"config file not found: {config_path}")
    try:
        raw = load_config(config_path, overrides=overrides or {})
        bad = non_finite_settings(raw)
        if bad:
            # spaCy refuses such a config with E961 and a dump of the whole config, before
            # any component runs: name the settings here instead.
            raise DebugDataError(
                f"{config_path}: non-finite value(s) in the config: "
                + ", ".join(f"{name} = {value}" for name, value in bad)
                + "; every setting must be a finite number (spaCy refuses the config with E961)"
            )
        nlp = load_model_from_config(raw, auto_fill=True)
        config = nlp.config.interpolate()
        training = config["training"]
        names = [
            training.get("train_corpus", "corpora.train"),
            training.get("dev_corpus", "corpora.dev"),
        ]
        train_corpus, dev_corpus = resolve_dot_names(config, names)
    except ConfigValidationError as err:
        raise DebugDataError(f"invalid config {config_path}:\n{err}") from err
    except ValueError as err:  # spaCy's readers: a corpus path left null (E913)
        raise DebugDataError(str(err)) from err
    name = find_component(nlp, component)
    pipe = nlp.get_pipe(name)
    head = pipe.model.get_ref("head")
    max_length, score_budget = head.attrs["max_length"], head.attrs["score_budget"]
    extra = values_per_cell(head.attrs, 0)  # span context's values a cell (GlobalPointer.v4)
    listed = configured_labels(config, name)
    augmented = [_as_written(corpus) for corpus in (train_corpus, dev_corpus)]
    train_path, dev_path = (_corpus_path(corpus) for corpus in (train_corpus, dev_corpus))
    train = analyse_corpus(
        read_corpus(train_corpus, nlp, "train"), pipe.key, max_length,
        score_budget=score_budget, n_labels=len(listed) if listed else None, extra_cell_values=extra,
    )
    n_labels = len(listed) if listed else len(train["labels"])  # the model's, once trained
    dev = analyse_corpus(
        read_corpus(dev_corpus, nlp, "dev"), pipe.key, max_length,
        score_budget=score_budget, n_labels=n_labels, extra_cell_values=extra,
    )
    return {
        "component": name,
        "spans_key": pipe.key,
        "max_length": max_length,
        "score_budget": score_budget,
        "coverage": SPAN_LENGTH_COVERAGE,
        "corpora": {"train": train_path, "dev": dev_path},
        "augmenter_switched_off": [n for n, on in zip(("train", "dev"), augmented) if on],
        "initialize_labels": listed,
        "train": train,
        "dev": dev,
        "dev_labels_not_in_train": sorted(set(dev["labels"]) - set(train["labels"])),
        "fatal": fatal_problems(name, pipe.key, train, listed, train_path),
    }


def non_finite_settings(config: Any, prefix: str = "") -> List[Tuple[str, float]]:
    """Dotted names and values of the NaN and infinite floats in a (nested) config."""
    found: List[Tuple[str, float]] = []
    if isinstance(config, dict):
        for key, value in config.items():
            found.extend(non_finite_settings(value, f"{prefix}{key}."))
    elif isinstance(config, (list, tuple)):
        for i, value in enumerate(config):
            found.extend(non_finite_settings(value, f"{prefix}{i}."))
    elif isinstance(config, float) and not math.isfinite(config):
        found.append((prefix.rstrip("."), config))
    return found


def fatal_problems(
    name: str,
    key: str,
    train: Dict[str, Any],
    listed: Optional[List[str]],
    train_path: Optional[str],
) -> List[str]:
    """What makes ``spacy train`` fail on this corpus, each as one sentence."""
    where = f" ({train_path})" if train_path else ""
    if not train["docs"]:
        return [
            f"the train corpus{where} gave 0 docs: training cannot start. spacy.Corpus reads "
            "a .spacy file (DocBin) or a folder of them; an empty DocBin, another file type "
            "(.jsonl, .json: convert it first) or a folder without .spacy files gives none"
        ]
    fatal = []
    section = f"[initialize.components.{name}] labels"
    if listed is not None:
        unknown = sorted(set(train["labels"]) - set(listed))
        if unknown:
            fatal.append(
                f"train labels {unknown} are not listed in {section} ({sorted(listed)}): "
                f"training fails with \"'{name}' got gold spans with label(s) {unknown} ... "
                "not seen in initialize()\". List them (e.g. `spacy init labels`)"
            )
    if not (listed if listed is not None else train["labels"]):
        fatal.append(
            f"no labels: no train doc has spans under doc.spans[{key!r}] and {section} lists "
            "none, so the component cannot be initialized. Check spans_key"
        )
    return fatal


def configured_labels(config: Config, name: str) -> Optional[List[str]]:
    """The labels ``[initialize.components.<name>]`` gives the component, or None (then
    initialize takes them from the train corpus)."""
    from spacy.util import registry

    settings = config.get("initialize", {}).get("components", {}).get(name, {})
    if settings.get("labels") is None:
        return None
    try:
        labels = registry.resolve({"labels": settings["labels"]})["labels"]
    except (ConfigValidationError, OSError, ValueError) as err:
        raise DebugDataError(f"cannot read [initialize.components.{name}] labels: {err}") from err
    return None if labels is None else [str(label) for label in labels]


def _as_written(corpus: Any) -> bool:
    """Switch off a corpus's augmenter and shuffling, so that the report describes the
    files as written, the same on every run. Whether an augmenter was on."""
    augmenter = getattr(corpus, "augmenter", None)
    if getattr(corpus, "shuffle", False):
        corpus.shuffle = False
    if augmenter is None or augmenter is dont_augment:
        return False
    corpus.augmenter = dont_augment
    return True


def _corpus_path(corpus: Any) -> Optional[str]:
    path = getattr(corpus, "path", None)
    return None if path is None else str(path)


def read_corpus(corpus: Any, nlp: Language, which: str) -> Iterator[Example]:
    """The corpus's examples; a file it cannot read as one error naming the path."""
    path = _corpus_path(corpus)
    where = f"the {which} corpus" + (f" {path}" if path else "")
    try:
        # Only reading happens in here: the caller's analysis runs outside this generator.
        yield from corpus(nlp)
    except (OSError, ValueError) as err:  # a missing path; not a DocBin (spaCy's E1014)
        raise DebugDataError(f"cannot read {where}: {err}") from err


def check_json_path(path: Path) -> None:
    """Refuse a --json path that cannot be written, before any work is done."""
    if path.is_dir():
        raise DebugDataError(f"--json {path} is a folder; give a file path")
    if not path.parent.is_dir():
        raise DebugDataError(f"--json {path}: the folder {path.parent} does not exist")


def write_json(report: Dict[str, Any], path: Path) -> None:
    try:
        path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as err:
        raise DebugDataError(f"cannot write --json {path}: {err.strerror or err}") from err


def print_report(report: Dict[str, Any], file: Optional[TextIO] = None) -> None:
    """The report as text; lines that start with ``!`` are problems."""
    key, max_length = f"doc.spans[{report['spans_key']!r}]", report["max_length"]
    max_length = "null" if max_length is None else max_length  # as the config writes it
    lines = [f"{FACTORY} {report['component']!r}: {key}, max_length {max_length}"]
    if report["initialize_labels"] is not None:
        lines.append(f"  labels from [initialize]: {', '.join(report['initialize_labels']) or 'none'}")
    for corpus in report["augmenter_switched_off"]:
        lines.append(f"  {corpus}: the config's augmenter is off here: the corpus as written")
    for corpus in ("train", "dev"):
        r = report[corpus]
        path = report["corpora"][corpus]
        lines += ["", f"{corpus}: {r['docs']} docs, {r['spans']} spans" + (f" ({path})" if path else "")]
        if not r["docs"] and corpus == "dev":
            lines.append("! no dev docs: nothing to evaluate on")
        if r["unannotated_docs"]:
            lines.append(f"! {r['unannotated_docs']} doc(s) without {key}: unannotated, no loss")
        if r["docs_without_spans"]:
            lines.append(f"  {r['docs_without_spans']} doc(s) with an empty {key}: no entities")
        labels = ", ".join(f"{label} {n}" for label, n in r["labels"].items())
        lines.append(f"  labels: {labels or 'none'}")
        if r["learnable_spans"]:
            lengths = ", ".join(f"{length}: {n}" for length, n in r["length_counts"].items())
            lines.append(f"  lengths in tokens (length: spans): {lengths}")
            longer = r["longer_than_max_length"]
            lines.append(
                f"{'!' if longer else ' '} longer than max_length {max_length}: {longer} "
                f"(longest {r['longest']}); max_length {r['suggested_max_length']} covers "
                f"{report['coverage']:.1%}"
            )
        pairs = r["pairs"]
        lines.append(
            f"  nested pairs: {pairs['nested']}, crossing pairs: {pairs['crossing']}, "
            f"same span with two labels: {pairs['same_extent']}, duplicates: {pairs['duplicates']}"
        )
        for reason, text in SKIP_REASONS.items():
            if r["skipped"][reason]:
                lines.append(f"! {r['skipped'][reason]} gold span(s) {text}: skipped in training")
        for kind, shown in r["examples"].items():
            for ex in shown:
                one = [ex.get(k) for k in ("start_char", "end_char", "label", "text")]
                spans = ex.get("spans", [one])  # a crossing pair has two
                detail = " and ".join(f"{s}-{e} {label} {text!r}" for s, e, label, text in spans)
                tokens = f", tokens {ex['tokens']}" if "tokens" in ex else ""
                lines.append(f"    e.g. {kind}: doc {ex['doc']}: {detail}{tokens}")
    if report["dev_labels_not_in_train"]:
        labels = ", ".join(report["dev_labels_not_in_train"])
        lines += ["", f"! dev labels not in train (never predicted): {labels}"]
    if report["fatal"]:
        lines.append("")
        lines += [f"! training will fail: {problem}" for problem in report["fatal"]]
    print("\n".join(lines), file=file or sys.stdout)  # sys.stdout as it is now
