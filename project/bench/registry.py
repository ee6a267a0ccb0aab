"""What the benchmark knows about: every dataset, system and encoder, named once here.

Everything else (the runner, the configs, the experiment files, the results page) looks
names up in these tables; adding a corpus, a head variant or an encoder starts with one
entry below (and, for a system or an encoder, its config block in bench/configs.py).

    from bench.registry import DATASETS, SYSTEMS, ENCODERS, dataset, system, encoder
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

PROJECT = Path(__file__).resolve().parents[1]
# The shared corpora, beside the repository (../../shared/data from project/); the
# environment variable BENCH_DATA_DIR points elsewhere (a checkout in another folder).
DATA_ROOT = Path(os.environ.get("BENCH_DATA_DIR") or PROJECT.parent.parent / "shared" / "data")


class UnknownName(ValueError):
    """A dataset, system or encoder name that the registry does not list."""


@dataclass(frozen=True)
class Dataset:
    """A corpus of span JSONL files (one folder under the shared data)."""

    name: str
    display: str  # as the results page titles it
    lang: str  # spaCy language code of the tokenizer
    nested: bool  # whether gold spans nest (the flat systems train on the outermost ones)
    folder: str  # under the shared data root
    splits: Mapping[str, str]  # split name -> file in the folder ("train" and the held-out one at least)
    heldout: str  # the split scored once at the end
    alignment: str  # scripts.span_utils.Alignment of span edges that fall inside tokens
    systems: Tuple[str, ...]  # the systems run by default
    dev_from_train: int = 0  # no dev split: the last N train sentences select the model (not trained on)
    heldout_note: str = ""  # what the held-out split is, for the results page

    def path(self, split: str, data_root: Optional[Path] = None) -> Path:
        """The JSONL file of one split."""
        if split not in self.splits:
            raise UnknownName(f"dataset {self.name!r} has no split {split!r}; it has {sorted(self.splits)}")
        return Path(data_root or DATA_ROOT) / self.folder / self.splits[split]


@dataclass(frozen=True)
class System:
    """A span head trained on the shared encoder."""

    name: str
    display: str
    family: str  # the config family (bench/configs.py) and, for scored spans, the threshold grid
    component: str  # the component's name in the pipeline
    score_weight: str  # the score spaCy's training selects by
    nested: bool  # predicts nested spans (doc.spans); False: flat (doc.ents, trained on outermost spans)
    options: Mapping[str, object] = field(default_factory=dict)  # the family's config parameters
    threshold: bool = False  # its spans carry a probability: a decision threshold can be tuned


@dataclass(frozen=True)
class Encoder:
    """The shared component every head listens to."""

    name: str
    display: str
    kind: str  # "cpu" (a tok2vec) or "transformer"
    pipe: str  # the shared component's name in the pipeline


_ALL_SYSTEMS = ("global_pointer", "global_pointer_efficient", "spancat", "spancat_1_3", "crf", "ner")

DATASETS: Dict[str, Dataset] = {d.name: d for d in (
    Dataset("genia", "GENIA", "en", True, "genia",
            {"train": "train.jsonl", "dev": "dev.jsonl", "test": "test.jsonl"}, "test", "split",
            ("global_pointer", "global_pointer_efficient", "spancat", "spancat_1_3", "crf"),
            heldout_note="GENIA (nested), held-out split: test"),
    # No labelled test split: the official dev set is held out, and model selection uses
    # the last 1,000 sentences of train.
    Dataset("cluener", "CLUENER", "zh", False, "cluener",
            {"train": "train.jsonl", "test": "dev.jsonl"}, "test", "strict", _ALL_SYSTEMS,
            dev_from_train=1000,
            heldout_note="CLUENER (flat), held-out split: the official dev set (model selection on the "
                         "last 1,000 train sentences, not trained on)"),
    Dataset("weibo", "Weibo", "zh", False, "weibo",
            {"train": "train.jsonl", "dev": "dev.jsonl", "test": "test.jsonl"}, "test", "strict", _ALL_SYSTEMS,
            heldout_note="Weibo (flat), held-out split: test"),
    Dataset("conll2003", "CoNLL-2003", "en", False, "conll2003",
            {"train": "train.jsonl", "dev": "dev.jsonl", "test": "test.jsonl"}, "test", "strict",
            ("global_pointer", "global_pointer_efficient", "crf", "ner"),
            heldout_note="CoNLL-2003 English (flat), held-out split: test (eng.testb)"),
)}

SYSTEMS: Dict[str, System] = {s.name: s for s in (
    System("global_pointer", "global_pointer", "global_pointer", "global_pointer", "spans_sc_f", True,
           {"efficient": False}, threshold=True),
    System("global_pointer_efficient", "global_pointer (efficient)", "global_pointer", "global_pointer",
           "spans_sc_f", True, {"efficient": True}, threshold=True),
    # "sizes": null: the runner sets the n-gram sizes covering 99.5% of the training spans.
    System("spancat", "spancat (99.5% sizes)", "spancat", "spancat", "spans_sc_f", True,
           {"sizes": None}, threshold=True),
    System("spancat_1_3", "spancat (sizes 1-3)", "spancat", "spancat", "spans_sc_f", True,
           {"sizes": [1, 2, 3]}, threshold=True),
    System("crf", "CRF tagger", "crf", "crf_tagger", "ents_f", False),
    System("ner", "spaCy ner", "ner", "ner", "ents_f", False),
)}

ENCODERS: Dict[str, Encoder] = {e.name: e for e in (
    Encoder("cnn", "CNN", "cpu", "tok2vec"),
    Encoder("bilstm", "BiLSTM", "cpu", "tok2vec"),
    Encoder("minilm", "MiniLM (all-MiniLM-L6-v2)", "transformer", "transformer"),
)}

# Every shared component name: the pipes timed as "the encoder alone".
ENCODER_PIPES: Tuple[str, ...] = tuple(sorted({e.pipe for e in ENCODERS.values()}))


def _lookup(table: Mapping[str, object], what: str, name: str) -> object:
    try:
        return table[name]
    except KeyError:
        raise UnknownName(f"unknown {what} {name!r}; known: {', '.join(table)}") from None


def dataset(name: str) -> Dataset:
    return _lookup(DATASETS, "dataset", name)  # type: ignore[return-value]


def system(name: str) -> System:
    return _lookup(SYSTEMS, "system", name)  # type: ignore[return-value]


def encoder(name: str) -> Encoder:
    return _lookup(ENCODERS, "encoder", name)  # type: ignore[return-value]


def threshold_family(name: str) -> Optional[str]:
    """The pipe (and grid) whose threshold a system's spans pass: its variants (efficient
    head, other n-gram sizes) share it; None for systems without span scores."""
    spec = system(name)
    return spec.family if spec.threshold else None


def check() -> None:
    """The tables' own consistency: each dataset's default systems exist."""
    for spec in DATASETS.values():
        for name in spec.systems:
            system(name)
        if spec.heldout not in spec.splits:
            raise UnknownName(f"dataset {spec.name!r}: held-out split {spec.heldout!r} not among its splits")


check()
