"""Benchmark pipelines built in memory (not trained to convergence): a system of
bench/configs.py, or a trivial head on the same encoder, initialized on some docs and
updated a few times, so that timing sees about as many predicted spans as a trained model
gives. The docs: a demo-like corpus built in memory, a DocBin or span JSONL."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence

from bench.common import SPANS_KEY
from bench.configs import config_text, head_config_text, transformer_overrides
from bench.training import update

TRIVIAL = "trivial_head"
_TRIVIAL_HEAD = """
[components.trivial_head]
factory = "bench_trivial_head"

[components.trivial_head.model]
@architectures = "spacy-globalpointer-bench.TrivialHead.v1"
"""  # head_config_text adds the encoder's listener


def register_trivial_head() -> None:
    """A head that costs next to nothing: one linear output per token, loss 0.5 * sum y^2.
    Training with it times the encoder's forward, backward and optimizer step."""
    from spacy.language import Language
    from spacy.pipeline import TrainablePipe
    from spacy.util import registry
    from thinc.api import Linear, Model, chain, with_array

    if "bench_trivial_head" in Language.factories:
        return

    @registry.architectures("spacy-globalpointer-bench.TrivialHead.v1")
    def build_trivial_head(tok2vec: Model) -> Model:
        return chain(tok2vec, with_array(Linear(nO=1)))

    class TrivialHead(TrainablePipe):
        def __init__(self, vocab: Any, model: Model, name: str) -> None:
            self.vocab, self.model, self.name, self.cfg = vocab, model, name, {}

        def predict(self, docs: Iterable[Any]) -> Any:
            return self.model.predict(list(docs))

        def set_annotations(self, docs: Iterable[Any], scores: Any) -> None:
            pass

        def initialize(self, get_examples: Callable, *, nlp: Any = None) -> None:
            self.model.initialize(X=[eg.predicted for eg in itertools.islice(get_examples(), 10)])

        def update(self, examples: Iterable[Any], *, drop: float = 0.0, sgd: Any = None,
                   losses: Optional[Dict[str, float]] = None) -> Dict[str, float]:
            losses = {} if losses is None else losses
            scores, backprop = self.model.begin_update([eg.predicted for eg in examples])
            backprop(scores)  # d(0.5 * y^2)/dy = y
            if sgd is not None:
                self.finish_update(sgd)
            losses[self.name] = losses.get(self.name, 0.0) + sum(float((y**2).sum()) / 2 for y in scores)
            return losses

    @Language.factory("bench_trivial_head")
    def make_trivial_head(nlp: Language, name: str, model: Model) -> TrivialHead:
        return TrivialHead(nlp.vocab, model, name)


# --- docs ----------------------------------------------------------------------------------


def load_examples(data: Optional[Path], lang: str, n_docs: int, seed: int) -> List[Any]:
    """Examples with gold spans under "sc", and their outermost spans as doc.ents (for the
    flat systems: the CRF and ner)."""
    import spacy
    from spacy.tokens import DocBin
    from spacy.training import Example
    from spacy.util import filter_spans

    from scripts.span_utils import Alignment, convert_records

    nlp = spacy.blank(lang)
    if data is None or data.suffix == ".jsonl":
        if data is None:
            from scripts.make_demo import make_corpus

            records = make_corpus(n_docs, seed)
        else:
            with data.open(encoding="utf8") as lines:
                records = [json.loads(line) for line in itertools.islice(lines, n_docs)]
        docbin, _ = convert_records(records, lang=lang, spans_key=SPANS_KEY, alignment=Alignment.contract)
    else:
        docbin = DocBin().from_disk(data)
    examples = []
    for doc in itertools.islice(docbin.get_docs(nlp.vocab), n_docs):
        doc.ents = filter_spans(doc.spans.get(SPANS_KEY, []))
        examples.append(Example(nlp.make_doc(doc.text), doc))
    return examples


# --- pipelines -----------------------------------------------------------------------------


class Trained(NamedTuple):
    nlp: Any
    optimizer: Any


def build_pipeline(system: str, encoder: str, lang: str, examples: List[Any], train_steps: int,
                   train_batch: int, seed: int, extra: Optional[Dict[str, Any]] = None) -> Trained:
    """A benchmark system (or the trivial head) initialized on the examples and trained for
    train_steps updates, so that it predicts about as many spans as a trained model."""
    import spacy
    from spacy.util import fix_random_seed, load_config_from_str, load_model_from_config

    if system == TRIVIAL:
        register_trivial_head()
        text = head_config_text(encoder, TRIVIAL, TRIVIAL, _TRIVIAL_HEAD, "spans_sc_f")
    else:
        text = config_text(encoder, system)
    blank_config = spacy.blank(lang).config
    overrides = {"nlp.lang": lang, "nlp.tokenizer": dict(blank_config["nlp"]["tokenizer"]),
                 "initialize.tokenizer": dict(blank_config["initialize"]["tokenizer"]),
                 **transformer_overrides(encoder)}
    if system == "spancat":
        longest = max((len(s) for eg in examples for s in eg.reference.spans.get(SPANS_KEY, [])), default=1)
        overrides["components.spancat.suggester.sizes"] = list(range(1, min(longest, 10) + 1))
    overrides.update(extra or {})
    # Interpolated: nlp.initialize resolves [training.optimizer] on its own, and minilm's
    # schedule refers to ${training.max_steps}.
    config = load_config_from_str(text, overrides=overrides, interpolate=True)
    fix_random_seed(seed)
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    optimizer = nlp.initialize(lambda: examples)
    batches = itertools.cycle(batches_of(examples, train_batch))
    for _ in range(train_steps):
        update(nlp, next(batches), optimizer, 0.1)
    return Trained(nlp, optimizer)


def batches_of(examples: Sequence[Any], size: int) -> List[List[Any]]:
    return [list(examples[i : i + size]) for i in range(0, len(examples), size)]
