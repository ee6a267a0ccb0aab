"""The ``global_pointer`` pipeline component: labels, loss, decoding, serialisation."""

import math
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy
import srsly
from spacy import util
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.pipeline.spancat import DEFAULT_SPANS_KEY, spancat_score
from spacy.scorer import get_ner_prf
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.util import filter_spans
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate
from thinc.types import Floats3d

from .band import boundary_tokens, valid_cells
from .gold import aligned_gold, gold_rows, length_report, new_counts, warn_skipped
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
    """spaCy's spancat scores on doc.spans[spans_key] (overlaps allowed), plus spaCy's
    entity scores (ents_p/r/f, ents_per_type) when the component writes doc.ents."""
    examples = list(examples)
    scores = spancat_score(examples, **kwargs)
    if kwargs.get("annotate_ents"):
        scores.update(get_ner_prf(examples))
    return scores


@util.registry.scorers("spacy-globalpointer.spans_scorer.v1")
def make_gp_scorer() -> Callable[..., Dict[str, Any]]:
    return gp_score


@Language.factory(
    "global_pointer",
    assigns=["doc.spans", "doc.ents"],
    default_config={
        "model": DEFAULT_MODEL,
        "spans_key": DEFAULT_SPANS_KEY,
        "threshold": 0.5,
        "annotate_ents": False,
        "overwrite_ents": False,
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
) -> "GlobalPointer":
    """Create a GlobalPointer span recogniser (nested and flat NER).

    model: scores every span up to max_length per label (GlobalPointer.v1).
    spans_key: key of doc.spans to read gold spans from and write predictions to.
    threshold: spans whose probability is above it are predicted; 0.5 is the loss's
        own boundary (logit 0).
    annotate_ents: also write the best-scoring non-overlapping spans to doc.ents.
    overwrite_ents: with annotate_ents, replace the entities an earlier component set;
        by default they are kept, and only spans that overlap none of them are added.
    scorer: the scoring function (default: spans P/R/F with overlaps allowed).
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
    )


class GlobalPointer(TrainablePipe):
    """Predicts possibly overlapping labelled spans from per-label span scores.

    Settings (spans_key, threshold, annotate_ents, overwrite_ents) come from the
    config; the saved ``cfg`` file holds only what the config cannot: the labels and
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
        }
        _check_settings(name, settings, "the component's config")
        if threshold == 0.0:
            warnings.warn(
                f"'{name}': threshold = 0.0 predicts every span. The threshold is a "
                "probability since spacy-globalpointer 0.2.0; the 0.1.0 default 0.0 (a logit) "
                "is 0.5 now.",
                stacklevel=2,
            )
        # What the config says, to tell at save time whether cfg was changed since.
        self._configured = dict(settings, threshold=float(threshold))
        self.cfg: Dict[str, Any] = {"labels": [], **self._configured, "input_width": None}
        # Gold spans the loss could not use, over the life of this object.
        self.gold_span_stats = new_counts()
        self.gold_span_report: Dict[str, int] = {}
        self._warned: set = set()
        # The logit threshold of a pipeline saved by 0.1.0, kept while its config is.
        self._legacy_threshold: Optional[float] = None

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
        # cfg can be edited after construction (spacy find-threshold does), so check here.
        _check_settings(self.name, {"threshold": self.cfg["threshold"]}, "cfg")
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
        labels = self.labels
        threshold = self.logit_threshold
        n_not_finite = 0
        for doc, doc_scores in zip(docs, scores):
            values = self.model.ops.to_numpy(doc_scores)
            n_not_finite += int(values.size - numpy.isfinite(values).sum())
            valid = valid_cells(self.model.ops, values.shape[1], boundary_tokens(doc))
            starts, ends, label_ids, span_scores = decode_spans(values, threshold, valid)
            spans = [
                Span(doc, int(s), int(e), label=labels[a])
                for s, e, a in zip(starts, ends, label_ids)
            ]
            probabilities = logit_to_probability(span_scores).astype("float32")
            doc.spans[self.key] = SpanGroup(
                doc, name=self.key, spans=spans, attrs={"scores": probabilities}
            )
            if self.cfg["annotate_ents"]:
                keep = [spans[k] for k in select_non_overlapping(starts, ends, span_scores)]
                self._set_ents(doc, keep)
        if n_not_finite:
            warnings.warn(
                f"'{self.name}': {n_not_finite} span score(s) in this batch are not finite "
                "(NaN or inf); no span was predicted from them. The encoder's output is "
                "probably broken (check the tok2vec and its weights).",
                stacklevel=2,
            )

    def _set_ents(self, doc: Doc, spans: List[Span]) -> None:
        if self.cfg["overwrite_ents"] or not doc.ents:
            doc.ents = spans
            return
        # Entities an earlier component set win; ours fill the tokens they leave free.
        taken = numpy.zeros(len(doc), dtype=bool)
        for ent in doc.ents:
            taken[ent.start : ent.end] = True
        added = [span for span in spans if not taken[span.start : span.end].any()]
        doc.ents = filter_spans(list(doc.ents) + added)

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
        """Loss and gradient for a batch (see scoring.global_pointer_loss).

        Spans that start or end on a whitespace token are neither positives nor
        negatives. Raises before any gradient exists if a score or the loss is not
        finite, so that an optimizer step cannot spread NaN into every weight.
        """
        examples = list(examples)
        xp = self.model.ops.xp
        n_not_finite = sum(int(s.size - xp.isfinite(s).sum()) for s in scores)
        if n_not_finite:
            raise ValueError(
                f"'{self.name}': {n_not_finite} of {sum(int(s.size) for s in scores)} span "
                "scores in this batch are not finite (NaN or inf), so the update was stopped "
                "before any weight changed. The encoder's output or the learning rate is "
                "probably at fault."
            )
        label_ids = {label: i for i, label in enumerate(self.labels)}
        counts = new_counts()
        gold, valid = [], []
        for eg, doc_scores in zip(examples, scores):
            width = int(doc_scores.shape[1])
            rows = gold_rows(eg, self.key, label_ids, width, counts)
            gold.append(None if rows is None else self.model.ops.asarray2i(rows))
            valid.append(valid_cells(self.model.ops, width, boundary_tokens(eg.predicted)))
        for reason, count in counts.items():
            self.gold_span_stats[reason] += count
        warn_skipped(self.name, counts, self._warned, hint=True)
        loss, d_scores = global_pointer_loss(self.model.ops, scores, gold, valid)
        if not math.isfinite(loss):
            raise ValueError(
                f"'{self.name}': the loss is not finite ({loss}); the update was stopped "
                "before any weight changed."
            )
        return loss, d_scores

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
        tokens, bounded by whitespace, or longer than max_length (with the max_length
        that would cover 99.5% of the spans).
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
        counts = new_counts()
        for eg in get_examples():
            n_examples += 1
            lengths.extend(len(span) for span in aligned_gold(eg, self.key, counts))
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
        warn_skipped(self.name, counts)
        self.gold_span_report = length_report(
            self.name, lengths, counts, self.max_length, SPAN_LENGTH_COVERAGE
        )

    # Serialisation: the torch module is built lazily from the input width, so it
    # must exist before weights are read into it.

    def _saved_cfg(self) -> Dict[str, Any]:
        changed = {
            key: self.cfg[key] for key, value in self._configured.items() if self.cfg[key] != value
        }
        if changed:
            warnings.warn(
                f"'{self.name}': settings {changed} were changed after the component was "
                f"built from its config ({ {k: self._configured[k] for k in changed} }). "
                "Settings are saved in the pipeline's config.cfg, not with the weights, so "
                "the saved pipeline keeps the config's values. Set them in the config "
                "(spacy.load(path, config={...}) or config.cfg) to keep them.",
                stacklevel=3,
            )
        saved = {key: self.cfg[key] for key in SAVED_CFG_KEYS}
        if self._legacy_threshold is not None:
            # The config.cfg saved beside it still holds the 0.1.0 logit.
            saved["threshold"] = self._legacy_threshold
        return saved

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        serialize = {
            "cfg": lambda: srsly.json_dumps(self._saved_cfg()),
            "vocab": lambda: self.vocab.to_bytes(exclude=exclude),
            "model": self.model.to_bytes,
        }
        return util.to_bytes(serialize, exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "GlobalPointer":
        deserialize = {
            "cfg": lambda b: self._load_cfg(b, "bytes"),
            "vocab": lambda b: self.vocab.from_bytes(b, exclude=exclude),
            "model": lambda b: self._load_model(b, "bytes"),
        }
        util.from_bytes(bytes_data, deserialize, exclude)
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        serialize = {
            "cfg": lambda p: srsly.write_json(p, self._saved_cfg()),
            "vocab": lambda p: self.vocab.to_disk(p, exclude=exclude),
            "model": lambda p: self.model.to_disk(p),
        }
        util.to_disk(path, serialize, exclude)

    def from_disk(
        self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()
    ) -> "GlobalPointer":
        deserialize = {
            "cfg": lambda p: self._load_cfg(self._read_file(Path(p)), str(p)),
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

    def _load_cfg(self, data: bytes, source: str) -> None:
        """Take labels and input width from a saved cfg; settings stay the config's.

        Files written before settings moved to the config also hold spans_key,
        threshold and annotate_ents: they are checked, and where they differ from
        the config the user is told which value is used.
        """
        try:
            saved = srsly.json_loads(data)
        except ValueError as err:
            raise ValueError(
                f"Cannot load '{self.name}' settings from {source}: not valid JSON ({err}). "
                "The file may be truncated or corrupted."
            ) from err
        if not isinstance(saved, dict) or not isinstance(saved.get("labels"), list):
            raise ValueError(
                f"Cannot load '{self.name}' settings from {source}: expected a JSON object "
                f"with a 'labels' list, got {str(saved)[:80]!r}."
            )
        labels, width = saved["labels"], saved.get("input_width")
        if not all(isinstance(label, str) and label for label in labels) or len(
            set(labels)
        ) != len(labels):
            raise ValueError(
                f"Cannot load '{self.name}' settings from {source}: 'labels' must be "
                f"distinct non-empty strings, got {labels!r}."
            )
        if width is not None and (isinstance(width, bool) or not isinstance(width, int) or width < 1):
            raise ValueError(
                f"Cannot load '{self.name}' settings from {source}: 'input_width' must be a "
                f"positive integer, got {width!r}."
            )
        legacy = {key: saved[key] for key in self._configured if key in saved}
        if "threshold" in legacy:
            self._migrate_logit_threshold(legacy.pop("threshold"), source)
        _check_settings(self.name, legacy, source)
        overruled = {k: v for k, v in legacy.items() if v != self.cfg[k]}
        if overruled:
            warnings.warn(
                f"'{self.name}': {source} holds settings {overruled} from an older version; "
                f"the config's values { {k: self.cfg[k] for k in overruled} } are used.",
                stacklevel=3,
            )
        self.cfg["labels"] = list(labels)
        self.cfg["input_width"] = width

    def _migrate_logit_threshold(self, logit: Any, source: str) -> None:
        """Read a pipeline saved by 0.1.0, whose threshold was a logit.

        Its config.cfg holds that logit too. While the config still says the same, the
        logit is converted to a probability, and re-saving keeps the old cfg entry so
        that the next load converts again; a different config value (a load-time
        override) is taken as a probability.
        """
        if isinstance(logit, bool) or not isinstance(logit, (int, float)) or not math.isfinite(logit):
            raise ValueError(
                f"'{self.name}': threshold in {source} must be a finite number, got {logit!r}."
            )
        if self.cfg["threshold"] != logit:
            warnings.warn(
                f"'{self.name}': {source} was saved by spacy-globalpointer 0.1.0 with the logit "
                f"threshold {logit}; the config's threshold {self.cfg['threshold']} is used, "
                "as a probability.",
                stacklevel=4,
            )
            return
        probability = float(logit_to_probability(numpy.float64(logit)))
        warnings.warn(
            f"'{self.name}': {source} was saved by spacy-globalpointer 0.1.0, whose threshold "
            f"was a logit ({logit}); it is read as the probability {probability:.6g}. Set "
            f"threshold = {probability:.6g} in the pipeline's config.cfg and save it again "
            "to drop this step.",
            stacklevel=4,
        )
        self._legacy_threshold = logit
        self.cfg["threshold"] = self._configured["threshold"] = probability
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


def _is_empty(examples: Iterable[Example]) -> bool:
    for _ in examples:
        return False
    return True


# What the saved cfg file holds: all else is the config's.
SAVED_CFG_KEYS = ("labels", "input_width")


def logit_to_probability(logits: numpy.ndarray) -> numpy.ndarray:
    """The sigmoid, computed without overflow for logits of any size."""
    logits = numpy.asarray(logits, dtype="float64")
    return numpy.exp(-numpy.logaddexp(0.0, -logits))


def probability_to_logit(probability: float) -> float:
    """The logit a probability threshold stands for (0 and 1 give -inf and inf)."""
    if probability <= 0.0:
        return -math.inf
    if probability >= 1.0:
        return math.inf
    return math.log(probability) - math.log1p(-probability)


def _check_settings(name: str, settings: Dict[str, Any], source: str) -> None:
    """Raise a ValueError naming the source for any setting of the wrong type or value."""
    for key, value in settings.items():
        if key == "spans_key":
            ok = isinstance(value, str) and bool(value)
            expected = "a non-empty string"
        elif key == "threshold":
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = number and 0 <= value <= 1
            expected = "a probability in [0, 1]"
            if number and not ok and math.isfinite(value):
                # 0.1.0 took a logit: say what it converts to.
                expected += (
                    " (a logit threshold t of spacy-globalpointer 0.1.0 is the probability "
                    f"1 / (1 + e^-t): {value} is {float(logit_to_probability(numpy.float64(value))):.6g})"
                )
        else:
            ok = isinstance(value, bool)
            expected = "true or false"
        if not ok:
            raise ValueError(f"'{name}': {key} in {source} must be {expected}, got {value!r}.")


__all__ = ["GlobalPointer", "make_global_pointer", "make_gp_scorer", "gp_score"]
