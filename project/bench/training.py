"""One training step as `spacy train` takes it, for the benchmark's own training loops."""

from typing import Any, Dict, Optional, Sequence


def update(nlp: Any, batch: Sequence[Any], optimizer: Any, drop: float,
           losses: Optional[Dict[str, float]] = None) -> Dict[str, float]:
    """nlp.update on the batch, then advance the optimizer's schedules.

    thinc moves a scheduled setting (a warmup_linear learn_rate) only on
    optimizer.step_schedules(), which spaCy's training loop calls after every update;
    a loop that skips it trains at the schedule's first value for ever (warmup_linear's
    is 0: nothing learns)."""
    losses = nlp.update(batch, drop=drop, sgd=optimizer, losses=losses if losses is not None else {})
    optimizer.step_schedules()
    return losses
