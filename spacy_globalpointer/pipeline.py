"""The ``global_pointer`` pipeline component: labels, loss, decoding, serialisation."""

import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy
import srsly
from spacy import util
from spacy.attrs import IDX, LENGTH
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.scorer import Scorer
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate
from thinc.types import Floats3d

from .model import build_head_layers
from .scoring import decode_spans, global_pointer_loss, select_non_overlapping

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "spacy-globalpointer.GlobalPointer.v1"
head_width = 64
rope = true
efficient = false
max_length = 32
score_budget = 20000000

[model.tok2vec]
@architectures = "spacy.Tok2Vec.v2"

[model.tok2vec.embed]
@architectures = "spacy.MultiHashEmbed.v2"
width = 96
rows = [5000, 1000, 2500, 1000]
attrs = ["NORM", "PREFIX", "SUFFIX", "SHAPE"]
include_static_vectors = false

[model.tok2vec.encode]
@architectures = "spacy.MaxoutWindowEncoder.v2"
width = ${model.tok2vec.embed.width}
window_size = 1
maxout_pieces = 3
depth = 4
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG)["model"]

# Coverage used for the max_length suggestion made in initialize().
SPAN_LENGTH_COVERAGE = 0.995


def gp_score(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
    """Span P/R/F (overall and per type) on doc.spans[spans_key], overlaps allowed."""
    kwargs = dict(kwargs)
    key = kwargs["spans_key"]
    attr_prefix = "spans_"
    kwargs.setdefault("attr", f"{attr_prefix}{key}")
    kwargs.setdefault("allow_overlap", True)
    kwargs.setdefault("getter", lambda doc, attr: doc.spans.get(attr[len(attr_prefix) :], []))
    kwargs.setdefault("has_annotation", lambda doc: key in doc.spans)
    return Scorer.score_spans(examples, **kwargs)


@util.registry.scorers("spacy-globalpointer.spans_scorer.v1")
def make_gp_scorer() -> Callable[..., Dict[str, Any]]:
    return gp_score


@Language.factory(
    "global_pointer",
    assigns=["doc.spans"],
    default_config={
        "model": DEFAULT_MODEL,
        "spans_key": "sc",
        "threshold": 0.0,
        "annotate_ents": False,
        "scorer": {"@scorers": "spacy-globalpointer.spans_scorer.v1"},
    },
    default_score_weights={"spans_sc_f": 1.0, "spans_sc_p": 0.0, "spans_sc_r": 0.0},
)
def make_global_pointer(
    nlp: Language,
    name: str,
    model: Model[List[Doc], List[Floats3d]],
    spans_key: str,
    threshold: float,
    annotate_ents: bool,
    scorer: Optional[Callable],
) -> "GlobalPointer":
    """Create a GlobalPointer span recogniser (nested and flat NER).

    model: scores every span up to max_length per label (GlobalPointer.v1).
    spans_key: key of doc.spans to read gold spans from and write predictions to.
    threshold: spans scoring above it are predicted (the loss puts the boundary at 0).
    annotate_ents: also write the best-scoring non-overlapping spans to doc.ents.
    scorer: the scoring function (default: spans P/R/F with overlaps allowed).
    """
    return GlobalPointer(
        nlp.vocab,
        model,
        name,
        spans_key=spans_key,
        threshold=threshold,
        annotate_ents=annotate_ents,
        scorer=scorer,
    )


class GlobalPointer(TrainablePipe):
    """Predicts possibly overlapping labelled spans from per-label span scores."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model[List[Doc], List[Floats3d]],
        name: str = "global_pointer",
        *,
        spans_key: str = "sc",
        threshold: float = 0.0,
        annotate_ents: bool = False,
        scorer: Optional[Callable] = gp_score,
    ) -> None:
        if not isinstance(spans_key, str) or not spans_key:
            raise ValueError(f"spans_key must be a non-empty string, got {spans_key!r}")
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: Dict[str, Any] = {
            "labels": [],
            "spans_key": spans_key,
            "threshold": float(threshold),
            "annotate_ents": bool(annotate_ents),
            "input_width": None,
        }
        # Gold spans the loss could not use, over the life of this object.
        self.gold_span_stats = {"empty": 0, "misaligned": 0, "too_long": 0}
        self._warned: set = set()

    @property
    def key(self) -> str:
        return str(self.cfg["spans_key"])

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> List[str]:
        return list(self.labels)

    @property
    def threshold(self) -> float:
        return float(self.cfg["threshold"])

    @property
    def _head(self) -> Model:
        return self.model.get_ref("head")

    @property
    def max_length(self) -> Optional[int]:
        return self._head.attrs["max_length"]

    def add_label(self, label: str) -> int:
        """Add a label before initialization. Returns 1 if added, 0 if known."""
        if not isinstance(label, str) or not label:
            raise ValueError(f"Span labels must be non-empty strings, got {label!r}")
        if label in self.labels:
            return 0
        if self._head.layers:
            raise ValueError(
                f"Cannot add label {label!r} to '{self.name}' after initialization: "
                "the output layer is already sized for labels "
                f"{list(self.labels)}. Add all labels before nlp.initialize()."
            )
        self.cfg["labels"].append(label)
        self.vocab.strings.add(label)
        return 1

    def predict(self, docs: Iterable[Doc]) -> List[Floats3d]:
        """Banded span scores, one (n_tokens, width, n_labels) array per doc."""
        return self.model.predict(list(docs))

    def set_annotations(self, docs: Iterable[Doc], scores: List[Floats3d]) -> None:
        """Write spans scoring above threshold to doc.spans[key], scores in attrs."""
        labels = self.labels
        for doc, doc_scores in zip(docs, scores):
            values = self.model.ops.to_numpy(doc_scores)
            starts, ends, label_ids, span_scores = decode_spans(values, self.threshold)
            spans = [
                Span(doc, int(s), int(e), label=labels[a])
                for s, e, a in zip(starts, ends, label_ids)
            ]
            doc.spans[self.key] = SpanGroup(
                doc, name=self.key, spans=spans, attrs={"scores": span_scores.astype("float32")}
            )
            if self.cfg["annotate_ents"]:
                keep = select_non_overlapping(starts, ends, span_scores)
                doc.ents = [spans[k] for k in keep]

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "GlobalPointer.update")
        self._validate_labels(examples)
        if not any(len(eg.predicted) for eg in examples):
            return losses
        set_dropout_rate(self.model, drop)
        scores, backprop_scores = self.model.begin_update([eg.predicted for eg in examples])
        loss, d_scores = self.get_loss(examples, scores)
        backprop_scores(d_scores)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(
        self, examples: Iterable[Example], scores: List[Floats3d]
    ) -> Tuple[float, List[Floats3d]]:
        """Loss and gradient for a batch (see scoring.global_pointer_loss)."""
        examples = list(examples)
        gold = []
        counts = {"empty": 0, "misaligned": 0, "too_long": 0}
        for eg, doc_scores in zip(examples, scores):
            spans = self._gold_spans(eg, int(doc_scores.shape[1]), counts)
            gold.append(None if spans is None else self.model.ops.asarray2i(spans))
        for reason, count in counts.items():
            self.gold_span_stats[reason] += count
            if count and reason not in self._warned:
                self._warned.add(reason)
                warnings.warn(_skip_message(self.name, reason, count) + _SKIP_HINT, stacklevel=2)
        return global_pointer_loss(self.model.ops, scores, gold)

    def _gold_spans(
        self, eg: Example, width: int, counts: Dict[str, int]
    ) -> Optional[numpy.ndarray]:
        """Rows (start, offset, label) of the gold spans the band can hold.

        A reference doc without doc.spans[key] is unannotated for this key (None):
        it gives no loss and no gradient, and is not taken as a doc with no
        entities. An empty doc.spans[key] means "no entities": every span is a
        negative. Empty (zero-token) spans, spans that do not align with the
        predicted tokens and spans longer than the band are skipped and counted.
        Duplicates are one positive; one span with two labels is two positives.
        """
        if self.key not in eg.reference.spans:
            return None
        aligned = _aligned_gold(eg, self.key, counts)
        label_ids = {label: i for i, label in enumerate(self.labels)}
        rows = []
        for span in aligned:
            offset = span.end - span.start - 1
            if offset >= width:
                counts["too_long"] += 1
                continue
            rows.append((span.start, offset, label_ids[span.label_]))
        return numpy.asarray(rows, dtype="int32").reshape(-1, 3)

    def _validate_labels(self, examples: List[Example]) -> None:
        known = set(self.labels)
        unknown = {
            span.label_
            for eg in examples
            for span in eg.reference.spans.get(self.key, [])
            if span.label_ not in known
        }
        if unknown:
            raise ValueError(
                f"'{self.name}' got gold spans with label(s) {sorted(unknown)} under "
                f"doc.spans[{self.key!r}] that were not seen in initialize(); known "
                f"labels: {list(self.labels)}. Pass all labels to initialize "
                "(e.g. via `spacy init labels`)."
            )

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[List[str]] = None,
    ) -> None:
        """Set labels (given, or read from the reference spans) and size the model.

        Reports gold spans that cannot be learned: misaligned with the predicted
        tokens, or longer than max_length (with the max_length that would cover
        99.5% of the spans).
        """
        if callable(get_examples) and _is_empty(get_examples()):
            raise ValueError(
                f"'{self.name}' cannot be initialized: the training corpus is empty "
                "(get_examples() gave 0 examples). Check paths.train and [corpora.train]."
            )
        validate_get_examples(get_examples, "GlobalPointer.initialize")
        subbatch: List[Example] = []
        lengths: List[int] = []
        seen_labels = set()
        n_examples = 0
        counts = {"empty": 0, "misaligned": 0, "too_long": 0}
        for eg in get_examples():
            n_examples += 1
            aligned = _aligned_gold(eg, self.key, counts)
            lengths.extend(len(span) for span in aligned)
            seen_labels.update(span.label_ for span in eg.reference.spans.get(self.key, []))
            if len(subbatch) < 10:
                subbatch.append(eg)
        for label in labels if labels is not None else sorted(seen_labels):
            self.add_label(label)
        if not self.labels:
            raise ValueError(
                f"'{self.name}' has no labels: no example in the training data has spans "
                f"under doc.spans[{self.key!r}] ({n_examples} examples read), and no labels "
                "were given. Check spans_key, or pass labels to initialize."
            )
        head = self._head
        head.set_dim("nO", len(self.labels), force=True)
        tok2vec = self.model.get_ref("tok2vec")
        if subbatch:
            self.model.initialize(X=[eg.predicted for eg in subbatch])
        elif tok2vec.has_dim("nO"):
            head.set_dim("nI", tok2vec.get_dim("nO"), force=True)
            self.model.initialize()
        else:
            raise ValueError(
                f"'{self.name}' cannot infer its input width: get_examples gave no examples."
            )
        self.cfg["input_width"] = head.get_dim("nI")
        # Saved with the weights, so that loading can check them against cfg["labels"].
        head.attrs["labels"] = list(self.labels)
        self._report_gold_lengths(lengths, counts)

    def _report_gold_lengths(self, lengths: List[int], counts: Dict[str, int]) -> None:
        for reason in ("empty", "misaligned"):
            if counts[reason]:
                warnings.warn(_skip_message(self.name, reason, counts[reason]), stacklevel=3)
        n_misaligned = counts["misaligned"]
        max_length = self.max_length
        if not lengths:
            return
        suggestion = int(numpy.ceil(numpy.quantile(lengths, SPAN_LENGTH_COVERAGE)))
        n_too_long = sum(length > max_length for length in lengths) if max_length else 0
        self.cfg["gold_span_report"] = {
            "spans": len(lengths),
            "misaligned": n_misaligned,
            "empty": counts["empty"],
            "longer_than_max_length": n_too_long,
            "longest": max(lengths),
            "suggested_max_length": suggestion,
        }
        if n_too_long:
            warnings.warn(
                f"'{self.name}': {n_too_long} of {len(lengths)} gold spans are longer than "
                f"max_length={max_length} tokens (longest: {max(lengths)}); they cannot be "
                f"predicted and are skipped in training. max_length={suggestion} covers "
                f"{SPAN_LENGTH_COVERAGE:.1%} of the training spans.",
                stacklevel=3,
            )

    # Serialisation: the torch module is built lazily from the input width, so it
    # must exist before weights are read into it.

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        serialize = {
            "cfg": lambda: srsly.json_dumps(self.cfg),
            "vocab": lambda: self.vocab.to_bytes(exclude=exclude),
            "model": self.model.to_bytes,
        }
        return util.to_bytes(serialize, exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "GlobalPointer":
        deserialize = {
            "cfg": lambda b: self.cfg.update(srsly.json_loads(b)),
            "vocab": lambda b: self.vocab.from_bytes(b, exclude=exclude),
            "model": lambda b: self._load_model(b, "bytes"),
        }
        util.from_bytes(bytes_data, deserialize, exclude)
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        serialize = {
            "cfg": lambda p: srsly.write_json(p, self.cfg),
            "vocab": lambda p: self.vocab.to_disk(p, exclude=exclude),
            "model": lambda p: self.model.to_disk(p),
        }
        util.to_disk(path, serialize, exclude)

    def from_disk(
        self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()
    ) -> "GlobalPointer":
        deserialize = {
            "cfg": lambda p: self.cfg.update(self._read_cfg(Path(p))),
            "vocab": lambda p: self.vocab.from_disk(p, exclude=exclude),
            "model": lambda p: self._load_model(self._read_file(Path(p)), str(p)),
        }
        util.from_disk(path, deserialize, exclude)
        return self

    def _read_file(self, path: Path) -> bytes:
        if not path.is_file():
            raise FileNotFoundError(
                f"Cannot load '{self.name}': {path} is missing (the component directory "
                f"{path.parent} is incomplete: expected files 'cfg' and 'model')."
            )
        return path.read_bytes()

    def _read_cfg(self, path: Path) -> Dict[str, Any]:
        data = self._read_file(path)
        try:
            cfg = srsly.json_loads(data)
        except ValueError as err:
            raise ValueError(
                f"Cannot load '{self.name}' settings from {path}: not valid JSON ({err}). "
                "The file may be truncated or corrupted."
            ) from err
        if not isinstance(cfg, dict) or not isinstance(cfg.get("labels"), list):
            raise ValueError(
                f"Cannot load '{self.name}' settings from {path}: expected a JSON object "
                f"with a 'labels' list, got {str(cfg)[:80]!r}."
            )
        return cfg

    def _load_model(self, data: bytes, source: str) -> None:
        head = self._head
        # A stale label list must not survive loading weights saved without one.
        head.attrs.pop("labels", None)
        # Thinc's from_bytes overwrites attrs with the saved ones; the torch module
        # was built from the config's, so those that shape it must agree, and the
        # config's band settings (max_length, score_budget) stay in force.
        configured = dict(head.attrs)
        if not head.layers:
            if self.cfg.get("input_width") is None:
                raise ValueError(
                    f"Cannot load '{self.name}' weights from {source}: its cfg has no "
                    "input_width, so the component was never initialized before saving."
                )
            head.set_dim("nO", len(self.labels), force=True)
            head.set_dim("nI", int(self.cfg["input_width"]), force=True)
            build_head_layers(head)
        try:
            self.model.from_bytes(data)
        except Exception as err:
            raise ValueError(
                f"Cannot load '{self.name}' weights from {source}: {err}. The file may be "
                f"truncated or corrupted, or saved with other dimensions or labels "
                f"(cfg labels: {list(self.labels)}, input_width: {self.cfg['input_width']})."
            ) from err
        for attr in _STRUCTURAL_ATTRS:
            if attr in configured and head.attrs.get(attr) != configured[attr]:
                raise ValueError(
                    f"Cannot load '{self.name}' weights from {source}: they were saved with "
                    f"{attr}={head.attrs.get(attr)!r}, but the config builds the head with "
                    f"{attr}={configured[attr]!r}."
                )
        for attr in _BAND_ATTRS:
            if attr in configured:
                head.attrs[attr] = configured[attr]
        saved_labels = head.attrs.get("labels")
        if saved_labels is not None and list(saved_labels) != list(self.labels):
            raise ValueError(
                f"Cannot load '{self.name}' weights from {source}: they were trained for "
                f"labels {list(saved_labels)}, but the component's cfg lists "
                f"{list(self.labels)}. The cfg and model files do not belong together."
            )
        head.attrs["labels"] = list(self.labels)


# Head attrs that decide the torch module's layout or function, and those that only
# decide which spans are scored.
_STRUCTURAL_ATTRS = ("head_width", "rope", "efficient")
_BAND_ATTRS = ("max_length", "score_budget")


def _aligned_gold(eg: Example, key: str, counts: Dict[str, int]) -> List[Span]:
    """The reference spans under key that align with eg.predicted, non-empty.

    Counts the empty (zero-token) and the misaligned spans into counts.
    """
    reference = list(eg.reference.spans.get(key, []))
    non_empty = [span for span in reference if len(span)]
    if _same_tokens(eg):
        # Token i is the same token in both docs, so the spans' indices hold as they are;
        # this skips spaCy's general alignment, a noticeable share of a training step.
        aligned = non_empty
    else:
        aligned = [
            span for span in eg.get_aligned_spans_y2x(non_empty, allow_overlap=True) if len(span)
        ]
    counts["empty"] += len(reference) - len(non_empty)
    counts["misaligned"] += len(non_empty) - len(aligned)
    return aligned


def _same_tokens(eg: Example) -> bool:
    """Whether predicted and reference docs have the same text and token boundaries."""
    predicted, reference = eg.predicted, eg.reference
    if len(predicted) != len(reference) or predicted.text != reference.text:
        return False
    return bool(
        numpy.array_equal(predicted.to_array([IDX, LENGTH]), reference.to_array([IDX, LENGTH]))
    )


def _is_empty(examples: Iterable[Example]) -> bool:
    for _ in examples:
        return False
    return True


_SKIP_HINT = " Further skipped spans are counted in the component's gold_span_stats."


def _skip_message(name: str, reason: str, count: int) -> str:
    if reason == "empty":
        return f"'{name}': {count} gold span(s) are empty (zero tokens) and were skipped."
    if reason == "misaligned":
        return (
            f"'{name}': {count} gold span(s) do not align with the predicted tokens and "
            "were skipped."
        )
    return (
        f"'{name}': {count} gold span(s) are longer than the scored band (max_length or "
        "score_budget) and were skipped."
    )


__all__ = ["GlobalPointer", "make_global_pointer", "make_gp_scorer", "gp_score"]
