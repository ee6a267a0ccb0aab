"""The registered scorer: spaCy's own span and entity scores."""

from typing import Any, Callable, Dict, Iterable

from spacy.pipeline.spancat import spancat_score
from spacy.scorer import get_ner_prf
from spacy.training import Example
from spacy.util import registry


def gp_score(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
    """spaCy's spancat scores on doc.spans[spans_key] (overlaps allowed), plus spaCy's
    entity scores (ents_p/r/f, ents_per_type) when the component writes doc.ents."""
    examples = list(examples)
    scores = spancat_score(examples, **kwargs)
    if kwargs.get("annotate_ents"):
        scores.update(get_ner_prf(examples))
    return scores


@registry.scorers("spacy-globalpointer.spans_scorer.v1")
def make_gp_scorer() -> Callable[..., Dict[str, Any]]:
    return gp_score
