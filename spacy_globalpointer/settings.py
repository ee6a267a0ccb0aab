"""The component's settings, each declared once (name, type, range, default), and the one
check they all pass through: where they enter (the config) and where they are read
(``setting``: cfg can be edited on a live component, as ``spacy find-threshold`` does).

Settings live in the pipeline's config; the saved ``cfg`` file holds only what the config
cannot (labels, input width, the version that saved it: see serialize.py).
"""

import math
import warnings
from typing import Any, Callable, Dict, Mapping, NamedTuple

from spacy.pipeline.spancat import DEFAULT_SPANS_KEY

from .decode import logit_to_probability


class Setting(NamedTuple):
    type: type
    default: Any
    in_range: Callable[[Any], bool]
    expected: str  # the type and range in words, for error messages
    doc: str


SETTINGS: Dict[str, Setting] = {
    "spans_key": Setting(
        str, DEFAULT_SPANS_KEY, bool, "a non-empty string",
        "key of doc.spans to read gold spans from and write predictions to",
    ),
    "threshold": Setting(
        float, 0.5, lambda v: 0 <= v <= 1, "a probability in [0, 1]",
        "spans whose probability is above it are predicted; 0.5 is the loss's own boundary "
        "(logit 0)",
    ),
    "annotate_ents": Setting(
        bool, False, lambda v: True, "true or false",
        "also write the best-scoring non-overlapping spans to doc.ents",
    ),
    "overwrite_ents": Setting(
        bool, False, lambda v: True, "true or false",
        "with annotate_ents, replace the entities an earlier component set; by default they "
        "are kept, and only spans that overlap none of them are added",
    ),
    "boundary_smoothing": Setting(
        float, 0.0, lambda v: 0 <= v < 1, "a share in [0, 1) (0: off)",
        "training only: the share of each gold span's target given to the spans around it "
        "(Zhu & Li, 2022)",
    ),
    "boundary_smoothing_distance": Setting(
        int, 1, lambda v: v >= 1, "a whole number of tokens, at least 1",
        "how far around: start and end moved by at most this many tokens in all",
    ),
    "head_learn_rate_scale": Setting(
        float, 1.0, lambda v: 0 < v < math.inf,
        "a positive, finite number (1: the optimizer's own rate)",
        "training only: the head's weights step at the optimizer's learning rate times this "
        "(an embedded tok2vec, and a shared one through its listener, at the optimizer's own)",
    ),
}
DEFAULTS: Dict[str, Any] = {name: setting.default for name, setting in SETTINGS.items()}


def _has_type(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float)) and not math.isnan(value)
    return isinstance(value, kind)


def check_setting(name: str, key: str, value: Any, source: str) -> None:
    """Raise a ValueError naming the component, the setting and the source for a value
    of the wrong type or out of range (NaN is out of every range)."""
    if key not in SETTINGS:
        raise ValueError(f"'{name}': unknown setting {key!r} in {source}; known: {list(SETTINGS)}.")
    setting = SETTINGS[key]
    if _has_type(value, setting.type) and setting.in_range(value):
        return
    expected = setting.expected
    if key == "threshold" and _has_type(value, float) and math.isfinite(value):
        # 0.1.0 took a logit: say what it converts to.
        probability = float(logit_to_probability(value))
        expected += (
            " (a logit threshold t of spacy-globalpointer 0.1.0 is the probability "
            f"1 / (1 + e^-t): {value} is {probability:.6g})"
        )
    raise ValueError(f"'{name}': {key} in {source} must be {expected}, got {value!r}.")


def check_settings(name: str, settings: Mapping[str, Any], source: str) -> Dict[str, Any]:
    """All settings checked, the missing ones at their defaults (threshold a float).
    Warns about a combination that does nothing."""
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ValueError(f"'{name}': unknown setting(s) {unknown} in {source}; known: {list(SETTINGS)}.")
    checked = {**DEFAULTS, **settings}
    for key, value in checked.items():
        check_setting(name, key, value, source)
    checked["threshold"] = float(checked["threshold"])
    if checked["overwrite_ents"] and not checked["annotate_ents"]:
        warnings.warn(
            f"'{name}': overwrite_ents = true in {source} does nothing while annotate_ents = "
            "false (the component writes no doc.ents to overwrite with). Set annotate_ents = "
            "true to write doc.ents, or drop overwrite_ents.",
            stacklevel=3,
        )
    return checked


def setting(name: str, cfg: Mapping[str, Any], key: str) -> Any:
    """A setting as the component reads it: cfg's value, checked again, since cfg can be
    edited after construction (spacy find-threshold sets the threshold there)."""
    value = cfg[key]
    check_setting(name, key, value, "cfg")
    if key == "threshold" and value == 0.0:
        warnings.warn(
            f"'{name}': threshold = 0.0 predicts every span. The threshold is a probability "
            "since spacy-globalpointer 0.2.0; the 0.1.0 default 0.0 (a logit) is 0.5 now.",
            stacklevel=4,
        )
    return value
