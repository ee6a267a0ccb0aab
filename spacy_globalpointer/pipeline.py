"""The ``global_pointer`` pipeline component: labels, loss, decoding, serialisation."""

import math
import warnings
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, cast

import numpy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.pipeline.spancat import DEFAULT_SPANS_KEY
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate
from thinc.types import Floats3d

from .band import BandScores, boundary_tokens, valid_cells
from .gold import (
    check_labels,
    gold_rows,
    length_report,
    new_counts,
    smooth_boundaries,
    survey_examples,
    warn_if_mostly_misaligned,
    warn_skipped,
)
from .model import initialize_model
from .scorer import gp_score
from .scoring import (
    chunk_candidates,
    count_not_finite,
    decode_spans,
    global_pointer_loss,
    merge_entities,
    select_non_overlapping,
)
from .serialize import SavedCfgSerialization
from .settings import (
    check_settings,
    logit_to_probability,
    probability_to_logit,
)

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "spacy-globalpointer.GlobalPointer.v2"
head_width = 64
rope = true
efficient = true
max_length = 32
score_budget = 20000000
mixed_precision = false

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


@Language.factory(
    "global_pointer",
    assigns=["doc.spans", "doc.ents"],
    default_config={
        "model": DEFAULT_MODEL,
        "spans_key": DEFAULT_SPANS_KEY,
        "threshold": 0.5,
        "annotate_ents": False,
        "overwrite_ents": False,
        "boundary_smoothing": 0.0,
        "boundary_smoothing_distance": 1,
        "head_learn_rate_scale": 1.0,
        "scorer": {"@scorers": "spacy-globalpointer.spans_scorer.v1"},
    },
    default_score_weights={
        f"spans_{DEFAULT_SPANS_KEY}_f": 1.0,
        f"spans_{DEFAULT_SPANS_KEY}_p": 0.0,
        f"spans_{DEFAULT_SPANS_KEY}_r": 0.0,
    },
)
def make_global_pointer(
    nlp: Language,
    name: str,
    model: Model[List[Doc], List[Floats3d]],
    spans_key: str,
    threshold: float,
    annotate_ents: bool,
    overwrite_ents: bool,
    scorer: Optional[Callable],
    boundary_smoothing: float = 0.0,
    boundary_smoothing_distance: int = 1,
    head_learn_rate_scale: float = 1.0,
) -> "GlobalPointer":
    """Create a GlobalPointer span recogniser (nested and flat NER).

    model: scores every span up to max_length per label (GlobalPointer.v2, or v1).
    spans_key: key of doc.spans to read gold spans from and write predictions to.
    threshold: spans whose probability is above it are predicted; 0.5 is the loss's
        own boundary (logit 0).
    annotate_ents: also write the best-scoring non-overlapping spans to doc.ents.
    overwrite_ents: with annotate_ents, replace the entities an earlier component set;
        by default they are kept, and only spans that overlap none of them are added.
    scorer: the scoring function (default: spans P/R/F with overlaps allowed).
    boundary_smoothing: training only; the share of each gold span's target given to
        the spans around it (Zhu & Li, 2022), 0 (off, the default) to below 1.
    boundary_smoothing_distance: how far around: start and end moved by at most this
        many tokens in all.
    head_learn_rate_scale: training only; the head's weights are updated at the
        optimizer's learning rate times this (an embedded tok2vec, and a shared one
        through its listener, at the optimizer's own rate).
    """
    return GlobalPointer(
        nlp.vocab,
        model,
        name,
        spans_key=spans_key,
        threshold=threshold,
        annotate_ents=annotate_ents,
        overwrite_ents=overwrite_ents,
        scorer=scorer,
        boundary_smoothing=boundary_smoothing,
        boundary_smoothing_distance=boundary_smoothing_distance,
        head_learn_rate_scale=head_learn_rate_scale,
    )


# (starts, ends, labels, scores) of a doc's decoded spans, ends exclusive.
DecodedSpans = Tuple[List[int], List[int], List[int], List[float]]

# Up to this many cells of a chunk above threshold are sorted out one by one in Python:
# fewer calls than the vectorised path (a sentence at batch size 1 has a handful).
FEW_CANDIDATES = 32


def _add_few_candidates(
    found: List[DecodedSpans],
    docs: List[Doc],
    chunk: Any,
    above: List[int],
    indices: List[int],
    shapes: List[Tuple[int, ...]],
) -> None:
    """Append the real, whitespace-free spans among a chunk's cells above threshold
    (flat indices into chunk, in C order) to their docs' lists in found."""
    _, n_rows, width, n_labels = chunk.shape
    row_size, start_size = n_rows * width * n_labels, width * n_labels
    for cell in above:
        row, rest = divmod(cell, row_size)
        start, rest = divmod(rest, start_size)
        offset, label = divmod(rest, n_labels)
        n_tokens, doc_width = shapes[row][0], shapes[row][1]
        last = start + offset
        if last >= n_tokens or offset >= doc_width:
            continue
        doc = docs[indices[row]]
        if doc[start].is_space or doc[last].is_space:
            continue
        starts, ends, label_ids, span_scores = found[indices[row]]
        starts.append(start)
        ends.append(last + 1)
        label_ids.append(label)
        span_scores.append(float(chunk.flat[cell]))


class ScaledLearnRate:
    """An optimizer's step with its learning rate multiplied by scale (thinc's lr_scale)."""

    def __init__(self, optimizer: Optimizer, scale: float) -> None:
        self.optimizer = optimizer
        self.scale = scale

    def __call__(
        self, key: Tuple[int, str], weights: Any, gradient: Any, *, lr_scale: float = 1.0
    ) -> Tuple[Any, Any]:
        return self.optimizer(key, weights, gradient, lr_scale=lr_scale * self.scale)


class GlobalPointer(SavedCfgSerialization, TrainablePipe):
    """Predicts possibly overlapping labelled spans from per-label span scores.

    Settings (spans_key, threshold, annotate_ents, overwrite_ents, and the training-only
    boundary_smoothing, boundary_smoothing_distance and head_learn_rate_scale) come from
    the config; the saved ``cfg`` file holds only what the config cannot: the labels and
    the head's input width.
    """

    def __init__(
        self,
        vocab: Vocab,
        model: Model[List[Doc], List[Floats3d]],
        name: str = "global_pointer",
        *,
        spans_key: str = DEFAULT_SPANS_KEY,
        threshold: float = 0.5,
        annotate_ents: bool = False,
        overwrite_ents: bool = False,
        scorer: Optional[Callable] = gp_score,
        boundary_smoothing: float = 0.0,
        boundary_smoothing_distance: int = 1,
        head_learn_rate_scale: float = 1.0,
    ) -> None:
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        settings = {
            "spans_key": spans_key,
            "threshold": threshold,
            "annotate_ents": annotate_ents,
            "overwrite_ents": overwrite_ents,
            "boundary_smoothing": boundary_smoothing,
            "boundary_smoothing_distance": boundary_smoothing_distance,
            "head_learn_rate_scale": head_learn_rate_scale,
        }
        check_settings(name, settings, "the component's config")
        # What the config says, to tell at save time whether cfg was changed since.
        self._configured = dict(settings, threshold=float(threshold))
        self.cfg: Dict[str, Any] = {"labels": [], **self._configured, "input_width": None}
        # Gold spans the loss could not use, over the life of this object.
        self.gold_span_stats = new_counts()
        self.gold_span_report: Dict[str, int] = {}
        self._warned: set = set()
        self._legacy_threshold = None

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
        """The probability a span needs to be predicted."""
        # cfg can be edited after construction (spacy find-threshold does), so check here;
        # the warning about 0.0 waits until loading has migrated a 0.1.0 logit threshold.
        check_settings(self.name, {"threshold": self.cfg["threshold"]}, "cfg", warn_zero=True)
        return float(self.cfg["threshold"])

    @property
    def logit_threshold(self) -> float:
        """The threshold as a score: decoding compares logits, which keep their order
        where probabilities round to 1.0."""
        return probability_to_logit(self.threshold)

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
        """Write spans whose probability is above threshold to doc.spans[key], their
        probabilities in the group's attrs["scores"].

        No span starts or ends on a whitespace token. With annotate_ents, the
        best-scoring spans that share no token also go to doc.ents.
        """
        # Label hashes: a Span built from one skips the string store lookup.
        labels = [self.vocab.strings.add(label) for label in self.labels]
        docs = list(docs)
        found, n_not_finite = self._decode(docs, scores, self.logit_threshold)
        # One sigmoid for the batch's spans, then each doc's share of it.
        probabilities = logit_to_probability(
            numpy.asarray([score for *_, doc_scores in found for score in doc_scores], dtype="float32")
        ).astype("float32")
        offset = 0
        for doc, (starts, ends, label_ids, span_scores) in zip(docs, found):
            spans = [Span(doc, s, e, label=labels[a]) for s, e, a in zip(starts, ends, label_ids)]
            doc.spans[self.key] = SpanGroup(
                doc,
                name=self.key,
                spans=spans,
                attrs={"scores": probabilities[offset : offset + len(spans)].copy()},
            )
            offset += len(spans)
            if self.cfg["annotate_ents"]:
                chosen = select_non_overlapping(
                    numpy.asarray(starts, dtype=int),
                    numpy.asarray(ends, dtype=int),
                    numpy.asarray(span_scores, dtype="float32"),
                )
                doc.ents = merge_entities(doc, [spans[j] for j in chosen], self.cfg["overwrite_ents"])
        if n_not_finite:
            warnings.warn(
                f"'{self.name}': {n_not_finite} span score(s) in this batch are not finite "
                "(NaN or inf); no span was predicted from them. The encoder's output is "
                "probably broken (check the tok2vec and its weights).",
                stacklevel=2,
            )

    def _decode(
        self, docs: List[Doc], scores: List[Floats3d], threshold: float
    ) -> Tuple[List[DecodedSpans], int]:
        """Each doc's (starts, ends, labels, scores) above the logit threshold, as lists,
        and how many scores are not finite.

        Scores straight from predict (BandScores) are thresholded a padded chunk at a
        time, not a doc at a time; any other list of arrays doc by doc. The same spans
        either way."""
        ops = self.model.ops
        if not isinstance(scores, BandScores) or not scores.intact():
            values = [ops.to_numpy(doc_scores) for doc_scores in scores]
            found = []
            for doc, doc_values in zip(docs, values):
                arrays = decode_spans(doc_values, threshold, boundary=boundary_tokens(doc))
                found.append(tuple(array.tolist() for array in arrays))
            return found, count_not_finite(numpy, values)
        found = [([], [], [], []) for _ in docs]
        n_not_finite = 0
        for chunk, indices in scores.chunks:
            chunk = ops.to_numpy(chunk)
            with numpy.errstate(over="ignore", invalid="ignore"):  # inf sums: counted below
                chunk_sum = float(chunk.sum())
            if not math.isfinite(chunk_sum):
                n_not_finite += count_not_finite(numpy, [ops.to_numpy(scores[i]) for i in indices])
            shapes = [scores[i].shape for i in indices]
            above = numpy.flatnonzero(chunk > threshold)
            if len(above) <= FEW_CANDIDATES:
                _add_few_candidates(found, docs, chunk, above.tolist(), indices, shapes)
                continue
            rows, starts, offsets, label_ids, values = chunk_candidates(
                chunk, above, [shape[0] for shape in shapes], [shape[1] for shape in shapes]
            )
            bounds = numpy.searchsorted(rows, numpy.arange(len(indices) + 1)).tolist()
            for row, i in enumerate(indices):
                lo, hi = bounds[row], bounds[row + 1]
                if lo == hi:
                    continue
                doc_starts, doc_lasts = starts[lo:hi], starts[lo:hi] + offsets[lo:hi]
                boundary = boundary_tokens(docs[i])
                keep = boundary[doc_starts] & boundary[doc_lasts]
                found[i] = (
                    doc_starts[keep].tolist(),
                    (doc_lasts[keep] + 1).tolist(),
                    label_ids[lo:hi][keep].tolist(),
                    values[lo:hi][keep].tolist(),
                )
        return found, n_not_finite

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
        check_labels(self.name, examples, self.key, self.labels)
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

    def finish_update(self, sgd: Optimizer) -> None:
        """Update the weights from their gradients: the head's at the optimizer's learning
        rate times head_learn_rate_scale, the rest of the model (an embedded tok2vec) at
        the optimizer's own rate.

        A fresh head on a pretrained transformer may need a larger rate than the
        transformer's fine-tuning one; a single optimizer has one rate for both.
        """
        scale = self.cfg["head_learn_rate_scale"]
        check_settings(self.name, {"head_learn_rate_scale": scale}, "cfg")  # editable live
        if scale == 1:
            self.model.finish_update(sgd)
            return
        head = self._head
        head.finish_update(cast(Optimizer, ScaledLearnRate(sgd, float(scale))))
        # The rest as Model.finish_update does it, skipping the head's nodes.
        head_nodes = {id(node) for node in head.walk()}
        rest = [node for node in self.model.walk() if id(node) not in head_nodes]
        for node in rest:
            for shim in node.shims:
                shim.finish_update(sgd)
        for node in rest:
            for param_name in node.param_names:
                if node.has_grad(param_name):
                    param, _ = sgd(
                        (node.id, param_name), node.get_param(param_name), node.get_grad(param_name)
                    )
                    node.set_param(param_name, param)

    def get_loss(
        self, examples: Iterable[Example], scores: List[Floats3d]
    ) -> Tuple[float, List[Floats3d]]:
        """Loss and gradient for a batch (see scoring.global_pointer_loss).

        Spans that start or end on a whitespace token are neither positives nor
        negatives. Raises before any gradient exists if a score or the loss is not
        finite, so that an optimizer step cannot spread NaN into every weight.
        """
        examples = list(examples)
        n_not_finite = count_not_finite(self.model.ops.xp, scores)
        if n_not_finite:
            raise ValueError(
                f"'{self.name}': {n_not_finite} of {sum(int(s.size) for s in scores)} span "
                "scores in this batch are not finite (NaN or inf), so the update was stopped "
                "before any weight changed. The encoder's output or the learning rate is "
                "probably at fault."
            )
        label_ids = {label: i for i, label in enumerate(self.labels)}
        counts = new_counts()
        smoothing = {key: self.cfg[key] for key in ("boundary_smoothing", "boundary_smoothing_distance")}
        check_settings(self.name, smoothing, "cfg")  # cfg can be edited on a live component
        epsilon = float(smoothing["boundary_smoothing"])
        gold, valid, targets = [], [], []
        for eg, doc_scores in zip(examples, scores):
            width = int(doc_scores.shape[1])
            rows = gold_rows(eg, self.key, label_ids, width, counts)
            doc_valid = valid_cells(self.model.ops, width, boundary_tokens(eg.predicted))
            doc_targets = None
            if rows is not None and epsilon:
                rows, doc_targets = smooth_boundaries(
                    rows, self.model.ops.to_numpy(doc_valid), epsilon,
                    smoothing["boundary_smoothing_distance"],
                )
                doc_targets = self.model.ops.asarray1f(doc_targets)
            gold.append(None if rows is None else self.model.ops.asarray2i(rows))
            valid.append(doc_valid)
            targets.append(doc_targets)
        for reason, count in counts.items():
            self.gold_span_stats[reason] += count
        warn_skipped(self.name, counts, self._warned, hint=True)
        loss, d_scores = global_pointer_loss(
            self.model.ops, scores, gold, valid, targets if epsilon else None
        )
        if not math.isfinite(loss):
            raise ValueError(
                f"'{self.name}': the loss is not finite ({loss}); the update was stopped "
                "before any weight changed."
            )
        return loss, d_scores

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[List[str]] = None,
    ) -> None:
        """Set labels (given, or read from the reference spans) and size the model.

        Reports gold spans that cannot be learned: misaligned with the predicted
        tokens, bounded by whitespace, or longer than max_length (with the max_length
        that would cover 99.5% of the spans).
        """
        if callable(get_examples) and _is_empty(get_examples()):
            raise ValueError(
                f"'{self.name}' cannot be initialized: the training corpus is empty "
                "(get_examples() gave 0 examples). Check paths.train and [corpora.train]."
            )
        validate_get_examples(get_examples, "GlobalPointer.initialize")
        counts = new_counts()
        survey = survey_examples(get_examples(), self.key, counts)
        for label in labels if labels is not None else sorted(survey.labels):
            self.add_label(label)
        if not self.labels:
            raise ValueError(
                f"'{self.name}' has no labels: no example in the training data has spans "
                f"under doc.spans[{self.key!r}] ({survey.n_examples} examples read), and no labels "
                "were given. Check spans_key, or pass labels to initialize."
            )
        try:
            initialize_model(self.model, len(self.labels), [eg.predicted for eg in survey.sample])
        except ValueError as err:
            raise ValueError(f"'{self.name}' cannot be initialized: {err}") from err
        self.cfg["input_width"] = self._head.get_dim("nI")
        # Saved with the weights, so that loading can check them against cfg["labels"].
        self._head.attrs["labels"] = list(self.labels)
        warn_skipped(self.name, counts)
        warn_if_mostly_misaligned(self.name, counts, survey.n_spans, nlp)
        self.gold_span_report = length_report(
            self.name, survey.lengths, counts, self.max_length, SPAN_LENGTH_COVERAGE
        )


def _is_empty(examples: Iterable[Example]) -> bool:
    for _ in examples:
        return False
    return True


__all__ = ["GlobalPointer", "make_global_pointer"]
