"""The ``global_pointer`` pipeline component: labels, loss, decoding, serialisation."""

from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.pipeline.spancat import DEFAULT_SPANS_KEY
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Model, Optimizer, set_dropout_rate
from thinc.types import Floats3d

from .architectures import DEFAULT_MODEL
from .decode import (
    decode_batch,
    merge_entities,
    probability_to_logit,
    select_non_overlapping,
    span_probabilities,
    warn_not_finite,
)
from .gold import (
    SPAN_LENGTH_COVERAGE,
    check_labels,
    length_report,
    loss_targets,
    new_counts,
    survey_examples,
    warn_if_mostly_misaligned,
    warn_skipped,
)
from .loss import check_finite_loss, check_finite_scores, global_pointer_loss
from .model import finish_update, initialize_model
from .scorer import gp_score
from .serialize import SavedCfgSerialization
from .settings import DEFAULTS, check_settings, setting


@Language.factory(
    "global_pointer",
    assigns=["doc.spans", "doc.ents"],
    default_config={
        "model": DEFAULT_MODEL,
        **DEFAULTS,  # settings.SETTINGS declares each setting once
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
    boundary_smoothing: float,
    boundary_smoothing_distance: int,
    head_learn_rate_scale: float,
) -> "GlobalPointer":
    """Create a GlobalPointer span recogniser (nested and flat NER).

    model: scores every span up to max_length per label (architectures.py).
    scorer: the scoring function (default: spans P/R/F with overlaps allowed).
    The other arguments are the component's settings, each described with its type,
    range and default in settings.SETTINGS.
    """
    return GlobalPointer(
        nlp.vocab, model, name, scorer=scorer, spans_key=spans_key, threshold=threshold,
        annotate_ents=annotate_ents, overwrite_ents=overwrite_ents,
        boundary_smoothing=boundary_smoothing,
        boundary_smoothing_distance=boundary_smoothing_distance,
        head_learn_rate_scale=head_learn_rate_scale,
    )


class GlobalPointer(SavedCfgSerialization, TrainablePipe):
    """Predicts possibly overlapping labelled spans from per-label span scores.

    Settings (settings.SETTINGS) come from the config and are read through ``setting``;
    the saved ``cfg`` file holds only what the config cannot: the labels, the head's input
    width and the version that saved it (serialize.py).
    """

    def __init__(
        self,
        vocab: Vocab,
        model: Model[List[Doc], List[Floats3d]],
        name: str = "global_pointer",
        *,
        scorer: Optional[Callable] = gp_score,
        **settings: Any,
    ) -> None:
        """settings: those of settings.SETTINGS (spans_key, threshold ...), each at its
        default where not given."""
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        # What the config says, to tell at save time whether cfg was changed since.
        self._configured = check_settings(name, settings, "the component's config")
        self.cfg: Dict[str, Any] = {"labels": [], **self._configured, "input_width": None}
        # Gold spans the loss could not use, over the life of this object.
        self.gold_span_stats = new_counts()
        self.gold_span_report: Dict[str, int] = {}
        self._warned: set = set()

    @property
    def key(self) -> str:
        return str(self.setting("spans_key"))

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> List[str]:
        return list(self.labels)

    def setting(self, key: str) -> Any:
        """A setting's value in cfg, checked (cfg can be edited on a live component)."""
        return setting(self.name, self.cfg, key)

    @property
    def threshold(self) -> float:
        """The probability a span needs to be predicted."""
        # Read when used, not at construction: loading may migrate a 0.1.0 threshold.
        return float(self.setting("threshold"))

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
        found, n_not_finite = decode_batch(self.model.ops.to_numpy, docs, scores, self.logit_threshold)
        probabilities = span_probabilities(found)
        for doc, (starts, ends, label_ids, span_scores), doc_probabilities in zip(docs, found, probabilities):
            spans = [Span(doc, s, e, label=labels[a]) for s, e, a in zip(starts, ends, label_ids)]
            doc.spans[self.key] = SpanGroup(
                doc, name=self.key, spans=spans, attrs={"scores": doc_probabilities}
            )
            if self.setting("annotate_ents"):
                chosen = select_non_overlapping(starts, ends, span_scores)
                doc.ents = merge_entities(doc, [spans[j] for j in chosen], self.setting("overwrite_ents"))
        warn_not_finite(self.name, n_not_finite)

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
        """Update the weights: the head's at the optimizer's learning rate times
        head_learn_rate_scale (model.finish_update), the rest at the optimizer's own."""
        finish_update(self.model, sgd, self.setting("head_learn_rate_scale"))

    def get_loss(
        self, examples: Iterable[Example], scores: List[Floats3d]
    ) -> Tuple[float, List[Floats3d]]:
        """Loss and gradient for a batch (see loss.global_pointer_loss).

        Spans that start or end on a whitespace token are neither positives nor
        negatives. Raises before any gradient exists if a score or the loss is not
        finite, so that an optimizer step cannot spread NaN into every weight.
        """
        examples = list(examples)
        check_finite_scores(self.name, self.model.ops.xp, scores)
        counts = new_counts()
        targets = loss_targets(
            self.model.ops,
            examples,
            [int(doc_scores.shape[1]) for doc_scores in scores],
            self.key,
            {label: i for i, label in enumerate(self.labels)},
            counts,
            self.setting("boundary_smoothing"),
            self.setting("boundary_smoothing_distance"),
        )
        for reason, count in counts.items():
            self.gold_span_stats[reason] += count
        warn_skipped(self.name, counts, self._warned, hint=True)
        loss, d_scores = global_pointer_loss(self.model.ops, scores, *targets)
        check_finite_loss(self.name, loss)
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
