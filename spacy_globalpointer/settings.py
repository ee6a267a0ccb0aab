"""The component's settings: checked where they enter, and the saved cfg file.

Settings (spans_key, threshold, annotate_ents, overwrite_ents, boundary_smoothing,
boundary_smoothing_distance and head_learn_rate_scale) live in the pipeline's config; the
saved ``cfg`` file holds only what the config cannot (labels, input width).
Files saved by 0.1.0 also held the settings, the threshold as a logit: reading one keeps
working, and says what it did.
"""

import math
import warnings
from typing import Any, Dict, Optional

import numpy
import srsly

SETTINGS = ("spans_key", "threshold", "annotate_ents", "overwrite_ents")
# What the saved cfg file holds: all else is the config's.
SAVED_CFG_KEYS = ("labels", "input_width")


def logit_to_probability(logits: Any) -> numpy.ndarray:
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


def check_settings(
    name: str, settings: Dict[str, Any], source: str, warn_zero: bool = False
) -> None:
    """Raise a ValueError naming the source for any setting of the wrong type or value.

    warn_zero: warn about threshold 0.0, the 0.1.0 default, which now keeps every span.
    """
    for key, value in settings.items():
        if key == "spans_key":
            ok = isinstance(value, str) and bool(value)
            expected = "a non-empty string"
        elif key == "threshold":
            number = _is_number(value)
            ok = number and 0 <= value <= 1
            expected = "a probability in [0, 1]"
            if number and not ok and math.isfinite(value):
                # 0.1.0 took a logit: say what it converts to.
                probability = float(logit_to_probability(value))
                expected += (
                    " (a logit threshold t of spacy-globalpointer 0.1.0 is the probability "
                    f"1 / (1 + e^-t): {value} is {probability:.6g})"
                )
        elif key == "boundary_smoothing":
            ok = _is_number(value) and 0 <= value < 1
            expected = "a share in [0, 1) (0: off)"
        elif key == "boundary_smoothing_distance":
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
            expected = "a whole number of tokens, at least 1"
        elif key == "head_learn_rate_scale":
            ok = _is_number(value) and 0 < value < math.inf
            expected = "a positive, finite number (1: the optimizer's own rate)"
        else:
            ok = isinstance(value, bool)
            expected = "true or false"
        if not ok:
            raise ValueError(f"'{name}': {key} in {source} must be {expected}, got {value!r}.")
    if warn_zero and settings.get("threshold") == 0.0:
        warnings.warn(
            f"'{name}': threshold = 0.0 predicts every span. The threshold is a probability "
            "since spacy-globalpointer 0.2.0; the 0.1.0 default 0.0 (a logit) is 0.5 now.",
            stacklevel=4,
        )


def read_saved_cfg(name: str, data: bytes, source: str) -> Dict[str, Any]:
    """The saved cfg as a dict whose labels and input_width are checked."""
    try:
        saved = srsly.json_loads(data)
    except ValueError as err:
        raise ValueError(
            f"Cannot load '{name}' settings from {source}: not valid JSON ({err}). "
            "The file may be truncated or corrupted."
        ) from err
    if not isinstance(saved, dict) or not isinstance(saved.get("labels"), list):
        raise ValueError(
            f"Cannot load '{name}' settings from {source}: expected a JSON object "
            f"with a 'labels' list, got {str(saved)[:80]!r}."
        )
    labels, width = saved["labels"], saved.get("input_width")
    if len(set(labels)) != len(labels) or not all(isinstance(x, str) and x for x in labels):
        raise ValueError(
            f"Cannot load '{name}' settings from {source}: 'labels' must be distinct "
            f"non-empty strings, got {labels!r}."
        )
    if width is not None and (isinstance(width, bool) or not isinstance(width, int) or width < 1):
        raise ValueError(
            f"Cannot load '{name}' settings from {source}: 'input_width' must be a positive "
            f"integer, got {width!r}."
        )
    return saved


def apply_saved_settings(
    name: str, saved: Dict[str, Any], cfg: Dict[str, Any], source: str
) -> Optional[float]:
    """Reconcile the settings an older cfg file holds with the config's, in cfg.

    The config's values are used, with a warning where the file differs. The 0.1.0
    logit threshold: while the config still holds that same logit, it is converted to
    a probability in cfg and returned, so that saving again can keep it beside the
    config.cfg that holds it too. Returns None otherwise.
    """
    legacy = {key: saved[key] for key in SETTINGS if key in saved}
    migrated = None
    if "threshold" in legacy:
        logit = legacy.pop("threshold")
        if not _is_number(logit) or not math.isfinite(logit):
            raise ValueError(f"'{name}': threshold in {source} must be a finite number, got {logit!r}.")
        if cfg["threshold"] == logit:
            migrated = logit
            cfg["threshold"] = float(logit_to_probability(logit))
            warnings.warn(
                f"'{name}': {source} was saved by spacy-globalpointer 0.1.0, whose threshold "
                f"was a logit ({logit}); it is read as the probability {cfg['threshold']:.6g}. "
                f"Set threshold = {cfg['threshold']:.6g} in the pipeline's config.cfg and save "
                "it again to drop this step.",
                stacklevel=4,
            )
        else:
            warnings.warn(
                f"'{name}': {source} was saved by spacy-globalpointer 0.1.0 with the logit "
                f"threshold {logit}; the config's threshold {cfg['threshold']} is used, as a "
                "probability.",
                stacklevel=4,
            )
    check_settings(name, legacy, source)
    overruled = {key: value for key, value in legacy.items() if value != cfg[key]}
    if overruled:
        warnings.warn(
            f"'{name}': {source} holds settings {overruled} from an older version; the "
            f"config's values { {key: cfg[key] for key in overruled} } are used.",
            stacklevel=4,
        )
    return migrated


def warn_if_changed(name: str, cfg: Dict[str, Any], configured: Dict[str, Any]) -> None:
    """Warn at save time about settings changed on the live component."""
    changed = {key: cfg[key] for key, value in configured.items() if cfg[key] != value}
    if changed:
        warnings.warn(
            f"'{name}': settings {changed} were changed after the component was built from "
            f"its config ({ {key: configured[key] for key in changed} }). Settings are saved "
            "in the pipeline's config.cfg, not with the weights, so the saved pipeline keeps "
            "the config's values. Set them in the config (spacy.load(path, config={...}) or "
            "config.cfg) to keep them.",
            stacklevel=4,
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
