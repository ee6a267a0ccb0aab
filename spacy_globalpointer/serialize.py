"""Saving and loading the component: the cfg file holds the labels, the input width and
the version that saved it; the settings stay the config's (settings.py); the head is built
before its weights are read (model.load_weights).

Migration from 0.1.0, whose threshold was a logit (0.0 by default) kept in config.cfg: a
cfg file that records no version was saved by 0.1.0 (or by 0.2.0 before versions were
recorded, when a threshold of 0.0 kept every span), so its config's threshold 0.0 is read
as the probability 0.5, the same spans. Cfg files of 0.1.0's development versions also
held the settings, the threshold a logit there: reading one keeps working, and says what
it did.
"""

import math
import warnings
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Union

import srsly
from spacy import util
from spacy.vocab import Vocab
from thinc.api import Model

from .about import __version__
from .decode import logit_to_probability
from .model import load_weights
from .settings import check_setting

# The settings a cfg file of 0.1.0's development versions held.
OLD_CFG_SETTINGS = ("spans_key", "threshold", "annotate_ents", "overwrite_ents")


class SavedCfgSerialization:
    """to/from bytes and disk for the component (a mixin over TrainablePipe's).

    spaCy's util.from_bytes/from_disk would skip a missing part; here a damaged message or
    a missing file is an error that names the component, never weights left unread.
    """

    name: str
    vocab: Vocab
    model: Model
    cfg: Dict[str, Any]
    _configured: Dict[str, Any]
    # The logit threshold of a pipeline saved by 0.1.0, kept while its config is.
    _legacy_threshold: Optional[float] = None
    # Whether that logit was read from the cfg file itself (0.1.0's development versions).
    _legacy_in_cfg: bool = False

    def _saved_cfg(self) -> Dict[str, Any]:
        warn_if_changed(self.name, self.cfg, self._configured)
        saved = {"labels": self.cfg["labels"], "input_width": self.cfg["input_width"]}
        if self._legacy_threshold is None:
            saved["version"] = __version__
        elif self._legacy_in_cfg:
            # The config.cfg saved beside it still holds the 0.1.0 logit: saved as it came.
            saved["threshold"] = self._legacy_threshold
        return saved

    def _load_cfg(self, data: bytes, source: str) -> None:
        saved = read_saved_cfg(self.name, data, source)
        self._legacy_in_cfg = "threshold" in saved
        self._legacy_threshold = apply_saved_settings(self.name, saved, self.cfg, source)
        self._configured["threshold"] = self.cfg["threshold"]
        self.cfg["labels"] = list(saved["labels"])
        self.cfg["input_width"] = saved.get("input_width")

    def _load_model(self, data: bytes, source: str) -> None:
        load_weights(
            self.model, data, list(self.cfg["labels"]), self.cfg["input_width"], self.name, source
        )

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        serialize = {
            "cfg": lambda: srsly.json_dumps(self._saved_cfg()),
            "vocab": lambda: self.vocab.to_bytes(exclude=exclude),
            "model": self.model.to_bytes,
        }
        return util.to_bytes(serialize, exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "SavedCfgSerialization":
        deserialize = {
            "cfg": lambda b: self._load_cfg(b, f"'{self.name}' cfg bytes"),
            "vocab": lambda b: self.vocab.from_bytes(b, exclude=exclude),
            "model": lambda b: self._load_model(b, f"'{self.name}' model bytes"),
        }
        # spaCy's util.from_bytes, but a damaged message or a missing part is an error
        # that names the component, never weights silently left unread.
        try:
            msg = srsly.msgpack_loads(bytes_data)
        except ValueError as err:
            raise ValueError(
                f"Cannot load '{self.name}' from bytes: {err}. The bytes may be truncated or "
                "corrupted."
            ) from err
        missing = [key for key in ("cfg", "model") if key not in exclude and key not in msg]
        if missing:
            raise ValueError(
                f"Cannot load '{self.name}' from bytes: no {missing} in them; they are not a "
                "serialised global_pointer component, or are truncated or corrupted."
            )
        for key, setter in deserialize.items():
            if key not in exclude and key in msg:
                setter(msg[key])
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
    ) -> "SavedCfgSerialization":
        deserialize = {
            "cfg": lambda p: self._load_cfg(_read_file(self.name, Path(p)), str(p)),
            "vocab": lambda p: self.vocab.from_disk(p, exclude=exclude),
            "model": lambda p: self._load_model(_read_file(self.name, Path(p)), str(p)),
        }
        util.from_disk(path, deserialize, exclude)
        return self


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
    version = saved.get("version")
    if version is not None and (not isinstance(version, str) or not version):
        raise ValueError(
            f"Cannot load '{name}' settings from {source}: 'version' must be a version string, "
            f"got {version!r}."
        )
    return saved


def apply_saved_settings(
    name: str, saved: Dict[str, Any], cfg: Dict[str, Any], source: str
) -> Optional[float]:
    """Reconcile a cfg file saved by an older version with the config's settings, in cfg.

    A file that records no version came with a config.cfg whose threshold was a logit:
    0.0 (0.1.0's default) is converted to the probability 0.5. A file that holds
    settings: the config's values are used, with a warning where the file differs; its
    logit threshold, while the config still holds that same logit, is converted to a
    probability. The logit converted is returned, so that saving again can keep the
    pipeline as old as its config.cfg. Returns None otherwise.
    """
    legacy = {key: saved[key] for key in OLD_CFG_SETTINGS if key in saved}
    migrated = None
    if "version" not in saved and "threshold" not in legacy and cfg["threshold"] == 0.0:
        cfg["threshold"] = 0.5
        warnings.warn(
            f"'{name}': {source} records no version: it was saved by spacy-globalpointer "
            "0.1.0, whose threshold was a logit (0.0); it is read as the probability 0.5 "
            "(the same spans). Set threshold = 0.5 in the pipeline's config.cfg and save it "
            "again to drop this step.",
            stacklevel=4,
        )
        return 0.0
    if "threshold" in legacy:
        logit = legacy.pop("threshold")
        if isinstance(logit, bool) or not isinstance(logit, (int, float)) or not math.isfinite(logit):
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
    for key, value in legacy.items():
        check_setting(name, key, value, source)
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


def _read_file(name: str, path: Path) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(
            f"Cannot load '{name}': {path} is missing (the component directory "
            f"{path.parent} is incomplete: expected files 'cfg' and 'model')."
        )
    return path.read_bytes()
