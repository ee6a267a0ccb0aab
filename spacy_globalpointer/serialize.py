"""Saving and loading the component: the cfg file holds labels and input width, the
settings stay the config's (settings.py), and the head is built before its weights are
read (model.load_weights)."""

from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Union

import srsly
from spacy import util
from spacy.vocab import Vocab
from thinc.api import Model

from .model import load_weights
from .settings import SAVED_CFG_KEYS, apply_saved_settings, read_saved_cfg, warn_if_changed


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

    def _saved_cfg(self) -> Dict[str, Any]:
        warn_if_changed(self.name, self.cfg, self._configured)
        saved = {key: self.cfg[key] for key in SAVED_CFG_KEYS}
        if self._legacy_threshold is not None:
            # The config.cfg saved beside it still holds the 0.1.0 logit.
            saved["threshold"] = self._legacy_threshold
        return saved

    def _load_cfg(self, data: bytes, source: str) -> None:
        saved = read_saved_cfg(self.name, data, source)
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


def _read_file(name: str, path: Path) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(
            f"Cannot load '{name}': {path} is missing (the component directory "
            f"{path.parent} is incomplete: expected files 'cfg' and 'model')."
        )
    return path.read_bytes()
