"""The benchmark's typed, versioned records: what `bench/results.py` stores in
`bench/results/**/*.json` and `bench/report/` reads.

Every record carries `schema_version` and `kind`. A training record's identity is
(experiment, variant, dataset, encoder, system, seed): a variant (a changed setting, named
"key=value[, key=value]", e.g. "head_learn_rate_scale=10") sits beside its experiment's
"baseline" runs and is never pooled with them.

Keys a record does not model are kept in `extra` and written back, so that reading and
writing a file loses nothing (`from_dict(d).to_dict() == d` less keys whose value is null).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Type, TypeVar, Union

SCHEMA_VERSION = 2
DEFAULT_VARIANT = "baseline"
# The decoding (decoding.json) that scores the component's flat output, annotate_ents = true.
FLAT_DECODING = "non_overlapping_default"

T = TypeVar("T", bound="Base")


class RecordError(ValueError):
    """A record or results file the store cannot read (unknown kind, schema version, or a
    missing field); the message names the file where known."""


@dataclass
class Base:
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls: Type[T], data: Dict[str, Any]) -> T:
        known = {f.name: f for f in dataclasses.fields(cls) if f.name != "extra"}
        kwargs: Dict[str, Any] = {}
        extra: Dict[str, Any] = {}
        for key, value in data.items():
            if key in known:
                kwargs[key] = _convert(cls, known[key].name, value)
            else:
                extra[key] = value
        missing = [f.name for f in known.values() if f.name not in kwargs and _required(f)]
        if missing:
            raise RecordError(f"{cls.__name__} lacks {', '.join(missing)}")
        return cls(**kwargs, extra=extra)

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = _plain(value)
        out.update(self.extra)
        return out


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING  # type: ignore[misc]


def _plain(value: Any) -> Any:
    if isinstance(value, Base):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# Nested typed members: (class, field) -> how to build it from its plain form.
def _convert(cls: type, name: str, value: Any) -> Any:
    nested = _NESTED.get((cls.__name__, name))
    if nested is None or value is None:
        return value
    how, target = nested
    if how == "one":
        return target.from_dict(value)
    if how == "list":
        return [target.from_dict(v) for v in value]
    return {k: target.from_dict(v) for k, v in value.items()}


@dataclass
class Scores(Base):
    """Precision, recall, F and their counts."""

    p: float = 0.0
    r: float = 0.0
    f: float = 0.0
    tp: Optional[int] = None
    predicted: Optional[int] = None
    gold: Optional[int] = None


@dataclass
class SpanRecall(Base):
    """Recall over a subset of the gold spans (nested, inner or outer spans)."""

    recall: Optional[float] = None
    found: Optional[int] = None
    spans: Optional[int] = None


@dataclass
class ByLength(Base):
    """P/R/F by span length: bucket name ("1-2", "3-5", "6-10", "11-20", "21+", or whatever
    the run used) -> scores; `unit` is what a length counts (words, characters)."""

    buckets: Dict[str, Scores] = field(default_factory=dict)
    unit: Optional[str] = None


@dataclass
class HeldOut(Base):
    """Scores on a split: overall, per type, against the outermost gold spans, recall of the
    nested gold spans (inside or containing another), of inner, outer and flat spans, errors by kind and
    scores by span length. All but `overall` are optional: a section of the page appears
    only where the records carry its data."""

    overall: Scores = field(default_factory=Scores)
    per_type: Dict[str, Scores] = field(default_factory=dict)
    outermost: Optional[Scores] = None
    nested_gold: Optional[SpanRecall] = None
    inner_spans: Optional[SpanRecall] = None
    outer_spans: Optional[SpanRecall] = None
    flat_spans: Optional[SpanRecall] = None
    errors: Optional[Dict[str, Any]] = None
    by_length: Optional[ByLength] = None

    @property
    def nested_recall(self) -> Optional[float]:
        return self.nested_gold.recall if self.nested_gold and self.nested_gold.spans else None


@dataclass
class CurvePoint(Base):
    """One dev evaluation during training."""

    step: int = 0
    train_seconds: float = 0.0
    dev: Scores = field(default_factory=Scores)
    epoch: Optional[int] = None
    words: Optional[int] = None
    wall_seconds: Optional[float] = None
    loss: Optional[float] = None


@dataclass
class Best(Base):
    """The best dev evaluation: the checkpoint scored on the held-out split."""

    dev_f: float = 0.0
    step: int = 0
    train_seconds: Optional[float] = None
    wall_seconds: Optional[float] = None


@dataclass
class TrainRecord(Base):
    """One training run: settings, the dev curve, the best checkpoint's held-out scores,
    timings. `predict_words_per_second` and `head_share` are optional speed figures of the
    trained model (prediction at batch 256; the head's share of prediction time)."""

    experiment: str = ""
    variant: str = DEFAULT_VARIANT
    dataset: str = ""
    encoder: str = ""
    system: str = ""
    seed: int = 0
    kind: str = "train"
    schema_version: int = SCHEMA_VERSION
    path: Optional[str] = None
    steps: Optional[int] = None
    steps_run: Optional[int] = None
    eval_every: Optional[int] = None
    patience: Optional[int] = None
    stopped_by: Optional[str] = None
    model_used: Optional[str] = None  # "best" (model-best) or "last" (no dev evaluation improved)
    result_schema_version: Optional[int] = None  # result.json's own layout version, where it has one
    train_limit: Optional[int] = None
    max_train_seconds: Optional[float] = None
    threads: Optional[int] = None
    flat: Optional[bool] = None
    heldout_split: Optional[str] = None
    spancat_sizes: Optional[List[int]] = None
    overrides: Dict[str, Any] = field(default_factory=dict)
    config_overrides: Optional[Dict[str, Any]] = None
    config_removed: Optional[List[str]] = None
    init_seconds: Optional[float] = None
    train_seconds: Optional[float] = None
    train_words: Optional[int] = None
    train_words_per_second: Optional[float] = None
    eval_seconds: Optional[float] = None
    wall_seconds: Optional[float] = None
    test_seconds: Optional[float] = None
    peak_rss_mb: Optional[float] = None
    final_learn_rate: Optional[float] = None
    predict_words_per_second: Optional[float] = None
    head_share: Optional[float] = None
    curve: List[CurvePoint] = field(default_factory=list)
    best: Best = field(default_factory=Best)
    test: HeldOut = field(default_factory=HeldOut)
    threshold: Optional[Dict[str, Any]] = None
    decoding: Optional[Any] = None
    machine: Optional[Dict[str, Any]] = None
    code: Optional[Dict[str, Any]] = None

    @property
    def key(self) -> Tuple[str, str, str, str, str, int]:
        return self.experiment, self.variant, self.dataset, self.encoder, self.system, self.seed

    @property
    def tuned_f(self) -> Optional[float]:
        """Held-out F at the decision threshold picked on dev, where the run has one."""
        if not self.threshold or "test_tuned" not in self.threshold:
            return None
        return self.threshold["test_tuned"]["overall"]["f"]


@dataclass
class TimingRecord(Base):
    """One timing repeat of a trained model: prediction at batch 1 and a large batch, the
    encoder alone, and training words/s (`full`, `encoder_only`, `train`: seconds, words,
    words_per_second per batch size)."""

    experiment: str = ""
    variant: str = DEFAULT_VARIANT
    dataset: str = ""
    encoder: str = ""
    system: str = ""
    seed: int = 0
    session: str = ""
    repeat: int = 0
    kind: str = "timing"
    schema_version: int = SCHEMA_VERSION
    path: Optional[str] = None
    full: Dict[str, Any] = field(default_factory=dict)
    encoder_only: Dict[str, Any] = field(default_factory=dict)
    train: Optional[Dict[str, Any]] = None
    peak_rss_mb: Optional[float] = None
    code: Optional[Dict[str, Any]] = None

    @property
    def key(self) -> Tuple[Any, ...]:
        return (self.experiment, self.variant, self.dataset, self.encoder, self.system, self.seed,
                self.session, self.repeat)


@dataclass
class HeadCostRecord(Base):
    """One `python -m bench time head-cost` output: per system, the head's share of prediction time,
    throughput against the encoder alone, training against a trivial head (`figures`).
    `session` names the measurement set: its runs alternated the packages on one machine."""

    source: str = ""
    session: str = ""
    label: str = ""
    role: str = "current"
    data: str = ""
    encoder: str = ""
    figures: Dict[str, Any] = field(default_factory=dict)
    kind: str = "head_cost"
    schema_version: int = SCHEMA_VERSION
    lang: Optional[str] = None
    threads: Optional[int] = None
    code: Optional[Dict[str, Any]] = None
    overrides: Optional[Dict[str, Any]] = None

    @property
    def key(self) -> Tuple[Any, ...]:
        return (self.source,)


@dataclass
class HeadPartsRecord(Base):
    """One `python -m bench time parts` output: a trained model's encoder, head forward and
    decoding seconds (medians over repeats) on a data file at one batch size."""

    experiment: str = ""
    dataset: str = ""
    encoder: str = ""
    system: str = ""
    seed: int = 0
    model: str = ""
    data: str = ""
    batch_size: int = 0
    medians: Dict[str, float] = field(default_factory=dict)
    kind: str = "head_parts"
    schema_version: int = SCHEMA_VERSION
    run: int = 0
    docs: Optional[int] = None
    words: Optional[int] = None
    spans: Optional[int] = None
    repeats: Optional[int] = None
    head_share: Optional[float] = None
    package: Optional[str] = None
    note: Optional[str] = None

    @property
    def key(self) -> Tuple[Any, ...]:
        return self.model, self.data, self.batch_size, self.package, self.run

    @property
    def words_per_second(self) -> Optional[float]:
        total = sum(self.medians.get(k, 0.0) for k in ("encoder", "forward", "decode"))
        return self.words / total if self.words and total else None


Record = Union[TrainRecord, TimingRecord, HeadCostRecord, HeadPartsRecord]
KINDS: Dict[str, Type[Base]] = {"train": TrainRecord, "timing": TimingRecord,
                                "head_cost": HeadCostRecord, "head_parts": HeadPartsRecord}

_NESTED: Dict[Tuple[str, str], Tuple[str, Type[Base]]] = {
    ("HeldOut", "overall"): ("one", Scores),
    ("HeldOut", "per_type"): ("map", Scores),
    ("HeldOut", "outermost"): ("one", Scores),
    ("HeldOut", "nested_gold"): ("one", SpanRecall),
    ("HeldOut", "inner_spans"): ("one", SpanRecall),
    ("HeldOut", "outer_spans"): ("one", SpanRecall),
    ("HeldOut", "flat_spans"): ("one", SpanRecall),
    ("HeldOut", "by_length"): ("one", ByLength),
    ("ByLength", "buckets"): ("map", Scores),
    ("CurvePoint", "dev"): ("one", Scores),
    ("TrainRecord", "curve"): ("list", CurvePoint),
    ("TrainRecord", "best"): ("one", Best),
    ("TrainRecord", "test"): ("one", HeldOut),
}


def record_from_dict(data: Dict[str, Any]) -> Record:
    """A record from its stored form; an unknown kind or schema version is a RecordError."""
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RecordError(f"schema_version {version!r} (this code reads {SCHEMA_VERSION})")
    kind = data.get("kind")
    if kind not in KINDS:
        raise RecordError(f"unknown record kind {kind!r} (known: {', '.join(KINDS)})")
    return KINDS[kind].from_dict(data)  # type: ignore[return-value]


def variant_settings(variant: str) -> Dict[str, str]:
    """A variant's name as its settings: "a=1, b=2" -> {"a": "1", "b": "2"};
    "baseline" -> {}."""
    if variant == DEFAULT_VARIANT:
        return {}
    out: Dict[str, str] = {}
    for part in variant.split(","):
        key, sep, value = part.strip().partition("=")
        out[key.strip()] = value.strip() if sep else ""
    return out


def variant_name(settings: Dict[str, Any]) -> str:
    """The inverse of variant_settings: sorted "key=value" pairs, or "baseline"."""
    if not settings:
        return DEFAULT_VARIANT
    return ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))
