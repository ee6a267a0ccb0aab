"""A linear-chain CRF tagger (BIO tags) as a spaCy component, for the benchmark.

The Thinc model maps docs to per-token emission scores (tok2vec >> Linear); the CRF's
transition, start and end scores are Thinc params of a small layer inside the same model,
so the pipeline's optimizer updates them and ``to_disk`` saves them. The likelihood and
the Viterbi decoding come from ``pytorch-crf`` (``torchcrf.CRF``), fed with those params.
The component writes ``doc.ents``: a CRF cannot represent nested spans.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import Linear, Model, Optimizer, chain, set_dropout_rate, with_array
from thinc.types import Floats2d

CRF_PARAMS = ("transitions", "start", "end")


@registry.architectures("spacy-globalpointer-bench.CRFTagger.v1")
def build_crf_tagger(
    tok2vec: Model[List[Doc], List[Floats2d]], nO: Optional[int] = None
) -> Model[List[Doc], List[Floats2d]]:
    """tok2vec >> Linear emissions, one (n_tokens, n_tags) array per doc, plus the CRF's
    transition params in a "crf" sublayer (not used by the forward pass)."""
    output = Linear(nO=nO)
    emissions = chain(tok2vec, with_array(output))
    crf = Model(
        "crf_params",
        _crf_params_forward,
        init=_crf_params_init,
        dims={"nO": nO},
        params={name: None for name in CRF_PARAMS},
    )
    model: Model[List[Doc], List[Floats2d]] = Model(
        "crf_tagger", _tagger_forward, init=_tagger_init, layers=[emissions, crf], dims={"nO": nO}
    )
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("output", output)
    model.set_ref("crf", crf)
    return model


def _tagger_forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    return model.layers[0](docs, is_train)


def _tagger_init(model: Model, X: Optional[List[Doc]] = None, Y: Any = None) -> None:
    n_tags = model.get_dim("nO")
    model.get_ref("output").set_dim("nO", n_tags, force=True)
    model.get_ref("crf").set_dim("nO", n_tags, force=True)
    model.layers[0].initialize(X=X)
    model.layers[1].initialize()


def _crf_params_forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    return X, lambda dY: dY


def _crf_params_init(model: Model, X: Any = None, Y: Any = None) -> None:
    n = model.get_dim("nO")
    model.set_param("transitions", model.ops.alloc2f(n, n))
    model.set_param("start", model.ops.alloc1f(n))
    model.set_param("end", model.ops.alloc1f(n))


def _torch_crf(crf_layer: Model, requires_grad: bool) -> Any:
    """A torchcrf.CRF holding copies of the layer's params."""
    import torch
    from torchcrf import CRF

    n_tags = crf_layer.get_dim("nO")
    module = CRF(n_tags, batch_first=True)
    with torch.no_grad():
        module.transitions.copy_(torch.from_numpy(numpy.asarray(crf_layer.get_param("transitions"))))
        module.start_transitions.copy_(torch.from_numpy(numpy.asarray(crf_layer.get_param("start"))))
        module.end_transitions.copy_(torch.from_numpy(numpy.asarray(crf_layer.get_param("end"))))
    module.requires_grad_(requires_grad)
    return module


def _pad(emissions: Sequence[Floats2d], n_tags: int) -> Tuple[Any, Any]:
    import torch

    longest = max(len(e) for e in emissions)
    padded = numpy.zeros((len(emissions), longest, n_tags), dtype="float32")
    mask = numpy.zeros((len(emissions), longest), dtype=bool)
    for i, e in enumerate(emissions):
        padded[i, : len(e)] = numpy.asarray(e)
        mask[i, : len(e)] = True
    return torch.from_numpy(padded), torch.from_numpy(mask)


def viterbi_decode(crf_layer: Model, emissions: Sequence[Floats2d]) -> List[List[int]]:
    """Best tag sequence per doc (empty docs give empty lists)."""
    import torch

    out: List[List[int]] = [[] for _ in emissions]
    rows = [i for i, e in enumerate(emissions) if len(e)]
    if not rows:
        return out
    module = _torch_crf(crf_layer, requires_grad=False)
    padded, mask = _pad([emissions[i] for i in rows], crf_layer.get_dim("nO"))
    with torch.no_grad():
        paths = module.decode(padded, mask=mask)
    for i, path in zip(rows, paths):
        out[i] = list(path)
    return out


def crf_loss(
    crf_layer: Model, emissions: Sequence[Floats2d], gold: Sequence[Sequence[int]]
) -> Tuple[float, List[Floats2d], Dict[str, numpy.ndarray]]:
    """Mean negative log-likelihood over the non-empty docs, its gradient with respect to
    the emissions (model marginals minus gold one-hots, via autograd) and to the CRF
    params."""
    import torch

    d_emissions = [numpy.zeros_like(numpy.asarray(e)) for e in emissions]
    rows = [i for i, e in enumerate(emissions) if len(e)]
    if not rows:
        return 0.0, d_emissions, {}
    module = _torch_crf(crf_layer, requires_grad=True)
    padded, mask = _pad([emissions[i] for i in rows], crf_layer.get_dim("nO"))
    padded.requires_grad_(True)
    tags = torch.zeros(mask.shape, dtype=torch.long)
    for row, i in enumerate(rows):
        tags[row, : len(gold[i])] = torch.as_tensor(list(gold[i]), dtype=torch.long)
    nll = -module(padded, tags, mask=mask, reduction="sum") / len(rows)
    nll.backward()
    grad = padded.grad.numpy()
    for row, i in enumerate(rows):
        d_emissions[i] = grad[row, : len(emissions[i])].copy()
    d_params = {
        "transitions": module.transitions.grad.numpy().copy(),
        "start": module.start_transitions.grad.numpy().copy(),
        "end": module.end_transitions.grad.numpy().copy(),
    }
    return float(nll.item()), d_emissions, d_params


def bio_tags(labels: Sequence[str]) -> List[str]:
    return ["O"] + [f"{prefix}-{label}" for label in labels for prefix in ("B", "I")]


def tags_to_spans(tags: Sequence[str]) -> List[Tuple[int, int, str]]:
    """(start, end, label) spans of a BIO sequence. An I- tag that does not continue a
    span of its label starts one (as conlleval reads it), so every span is valid."""
    spans: List[Tuple[int, int, str]] = []
    start, label = -1, ""
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, tag_label = tag.partition("-")
        if start >= 0 and (prefix != "I" or tag_label != label):
            spans.append((start, i, label))
            start = -1
        if prefix == "B" or (prefix == "I" and start < 0):
            start, label = i, tag_label
    return spans


_BILUO_TO_BIO = {"B": "B", "I": "I", "L": "I", "U": "B"}


@Language.factory(
    "bench_crf_tagger",
    assigns=["doc.ents"],
    default_config={"scorer": {"@scorers": "spacy.ner_scorer.v1"}},
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0},
)
def make_crf_tagger(
    nlp: Language, name: str, model: Model, scorer: Optional[Callable]
) -> CRFTagger:
    """Linear-chain CRF over BIO tags on a shared tok2vec; writes doc.ents."""
    return CRFTagger(nlp.vocab, model, name, scorer=scorer)


class CRFTagger(TrainablePipe):
    def __init__(
        self, vocab: Vocab, model: Model, name: str = "crf_tagger", *, scorer: Optional[Callable] = None
    ) -> None:
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: Dict[str, Any] = {"labels": []}

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> List[str]:
        return list(self.labels)

    @property
    def tags(self) -> List[str]:
        return bio_tags(self.labels)

    def add_label(self, label: str) -> int:
        if label in self.labels:
            return 0
        if self.model.get_ref("crf").has_param("transitions"):
            raise ValueError(f"Cannot add label {label!r} to '{self.name}' after initialization")
        self.cfg["labels"].append(label)
        self.vocab.strings.add(label)
        return 1

    def predict(self, docs: Iterable[Doc]) -> List[List[int]]:
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            return [[] for _ in docs]
        emissions = self.model.predict(docs)
        return viterbi_decode(self.model.get_ref("crf"), emissions)

    def set_annotations(self, docs: Iterable[Doc], paths: List[List[int]]) -> None:
        tags = self.tags
        for doc, path in zip(docs, paths):
            spans = tags_to_spans([tags[t] for t in path])
            doc.ents = [Span(doc, s, e, label=label) for s, e, label in spans]

    def _gold_tags(self, eg: Example) -> List[int]:
        """BIO tag ids on the predicted tokens; misaligned or missing tokens count as O."""
        index = {tag: i for i, tag in enumerate(self.tags)}
        out = []
        for biluo in eg.get_aligned_ner():
            if not biluo or biluo in ("O", "-"):
                out.append(0)
                continue
            prefix, _, label = biluo.partition("-")
            out.append(index.get(f"{_BILUO_TO_BIO[prefix]}-{label}", 0))
        return out

    def get_loss(
        self, examples: Iterable[Example], emissions: List[Floats2d]
    ) -> Tuple[float, List[Floats2d], Dict[str, numpy.ndarray]]:
        gold = [self._gold_tags(eg) for eg in examples]
        return crf_loss(self.model.get_ref("crf"), emissions, gold)

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
        validate_examples(examples, "CRFTagger.update")
        if not any(len(eg.predicted) for eg in examples):
            return losses
        set_dropout_rate(self.model, drop)
        emissions, backprop = self.model.begin_update([eg.predicted for eg in examples])
        loss, d_emissions, d_params = self.get_loss(examples, emissions)
        backprop([self.model.ops.asarray2f(d) for d in d_emissions])
        crf = self.model.get_ref("crf")
        for name, grad in d_params.items():
            crf.inc_grad(name, self.model.ops.asarray(grad))
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[List[str]] = None,
    ) -> None:
        validate_get_examples(get_examples, "CRFTagger.initialize")
        seen = set()
        subbatch: List[Doc] = []
        for eg in get_examples():
            seen.update(ent.label_ for ent in eg.reference.ents)
            if len(subbatch) < 10:
                subbatch.append(eg.predicted)
        for label in labels if labels is not None else sorted(seen):
            self.add_label(label)
        if not self.labels:
            raise ValueError(f"'{self.name}' has no labels: no gold doc.ents in the training data")
        self.model.set_dim("nO", len(self.tags), force=True)
        self.model.initialize(X=subbatch)


__all__ = ["CRFTagger", "build_crf_tagger", "viterbi_decode", "crf_loss", "tags_to_spans", "bio_tags"]
