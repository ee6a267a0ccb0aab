"""Engine-agnostic batch annotation: texts in, plain serialisable records out.

Everything here works on built-in Python types so that any engine (Ray Data, a process
pool, a plain loop) can move the results between processes. ``Doc`` and ``Language``
objects never leave the process that made them.

A record is either ``{"id": ..., "spans": [[start_char, end_char, label, score], ...]}``
or, for a text that could not be annotated, ``{"id": ..., "error": reason}``
(``arrow.py`` turns records into Arrow tables and back).
"""

from __future__ import annotations

import contextlib
import math
import operator
import threading
from pathlib import Path
from typing import (
    Any,
    ContextManager,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from spacy.language import Language
from spacy.pipeline.spancat import DEFAULT_SPANS_KEY
from spacy.tokens import Doc

# nlp.pipe pads each batch to its longest doc, so one runaway text (a whole book on one
# line) multiplies the memory of its whole batch; such texts are reported, not annotated.
DEFAULT_MAX_CHARS = 100_000
DEFAULT_BATCH_SIZE = 64

Record = Dict[str, Any]
SpanList = List[List[Any]]


class AnnotateError(ValueError):
    """A mistake in what a run was asked to do (arguments, paths, spans key), found before
    anything is written. The CLI prints its message as ``error: ...``, without a traceback."""


def check_positive(name: str, value: Any) -> int:
    """``value`` as an int if it is a positive integer, else :class:`AnnotateError`."""
    # A batch size of 0 drops every record and a negative one loops forever, so refuse both.
    try:
        number = operator.index(value)
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or number < 1:
        raise AnnotateError(f"{name} must be a positive integer, got {value!r}")
    return number


def pipeline_spans_keys(nlp: Language) -> List[str]:
    """The ``doc.spans`` keys that the pipeline's span components write, in pipeline order.

    A span component is one whose factory declares ``assigns=["doc.spans"]`` and which has
    a string ``key`` attribute (``global_pointer``, spaCy's ``spancat``).
    """
    keys: List[str] = []
    for name, pipe in nlp.pipeline:
        key = getattr(pipe, "key", None)
        if isinstance(key, str) and "doc.spans" in nlp.get_pipe_meta(name).assigns:
            if key not in keys:
                keys.append(key)
    return keys


def resolve_spans_key(nlp: Language, spans_key: Optional[str] = None) -> str:
    """The ``doc.spans`` key to read predictions from.

    ``None`` means the key the pipeline's span component writes; a pipeline with several
    such keys needs an explicit one. A key that no component writes is refused, since
    reading it would give every text an empty span list.
    """
    keys = pipeline_spans_keys(nlp)
    written = ", ".join(repr(k) for k in keys) if keys else "none"
    if spans_key is None:
        if len(keys) == 1:
            return keys[0]
        if not keys:
            raise AnnotateError(
                "the pipeline has no span component that writes doc.spans "
                f"(components: {', '.join(nlp.pipe_names) or 'none'})"
            )
        raise AnnotateError(
            f"the pipeline writes several doc.spans keys ({written}): choose one with "
            "--spans-key (spans_key=...)"
        )
    if spans_key not in keys:
        raise AnnotateError(
            f"no component of the pipeline writes doc.spans[{spans_key!r}] "
            f"(keys written: {written})"
        )
    return spans_key


_PIPELINES: Dict[Tuple[str, Tuple[str, ...]], Language] = {}
_PIPELINES_LOCK = threading.Lock()


def load_pipeline(model_path: Union[str, Path], *, exclude: Sequence[str] = ()) -> Language:
    """Load a packaged or saved pipeline once per process.

    ``model_path`` is a directory written by ``nlp.to_disk`` or the name of an installed
    pipeline package. Later calls with the same arguments return the same object, so a
    worker that builds several predictors still holds one copy of the weights.
    """
    key = (str(model_path), tuple(exclude))
    with _PIPELINES_LOCK:
        nlp = _PIPELINES.get(key)
        if nlp is None:
            import spacy

            nlp = spacy.load(model_path, exclude=list(exclude))
            _PIPELINES[key] = nlp
    return nlp


def surrogate_at(value: str) -> Optional[int]:
    """Index of the first unpaired surrogate in ``value`` (which UTF-8 cannot encode)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        return err.start
    return None


def check_text(
    value: Any, max_chars: Optional[int] = DEFAULT_MAX_CHARS
) -> Tuple[Optional[str], Optional[str]]:
    """Return ``(text, None)`` for an annotatable value, else ``(None, reason)``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        # pandas turns missing strings into None or NaN depending on the column dtype.
        return None, "missing text"
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as err:
            return None, f"bad encoding: not valid UTF-8 ({err.reason} at byte {err.start})"
    if not isinstance(value, str):
        return None, f"text is not a string (got {type(value).__name__})"
    # JSON allows escaped lone surrogates ("\udc80"); they cannot be written back out.
    bad = surrogate_at(value)
    if bad is not None:
        return None, f"bad encoding: unpaired surrogate at character {bad}"
    if max_chars is not None and len(value) > max_chars:
        return None, f"text too long ({len(value)} characters > {max_chars})"
    return str(value), None


def doc_spans(doc: Doc, spans_key: str = DEFAULT_SPANS_KEY) -> SpanList:
    """The spans in ``doc.spans[spans_key]`` as ``[start_char, end_char, label, score]``.

    ``score`` is ``None`` when the group has no ``attrs["scores"]``.
    """
    if spans_key not in doc.spans:
        return []
    group = doc.spans[spans_key]
    scores = group.attrs.get("scores")
    out: SpanList = []
    for i, span in enumerate(group):
        score = None if scores is None else float(scores[i])
        out.append([int(span.start_char), int(span.end_char), str(span.label_), score])
    return out


def _memory_zone(nlp: Language) -> ContextManager[Any]:
    # memory_zone arrived in spaCy 3.8; older versions simply keep the strings.
    zone = getattr(nlp, "memory_zone", None)
    return zone() if zone is not None else contextlib.nullcontext()


def _pipe_records(
    nlp: Language,
    items: Sequence[Tuple[int, str]],
    ids: Sequence[Any],
    spans_key: str,
    batch_size: int,
    out: Dict[int, Record],
) -> None:
    """Annotate ``items`` into ``out``; on an exception, ``out`` holds what was done."""
    texts = (text for _, text in items)
    # Indexing rather than zip(strict=...), which needs Python 3.10.
    for k, doc in enumerate(nlp.pipe(texts, batch_size=batch_size)):
        i = items[k][0]
        out[i] = {"id": ids[i], "spans": doc_spans(doc, spans_key)}


def annotate_batch(
    nlp: Language,
    ids: Sequence[Any],
    texts: Sequence[Any],
    *,
    spans_key: Optional[str] = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_chars: Optional[int] = DEFAULT_MAX_CHARS,
) -> List[Record]:
    """Annotate ``texts`` with ``nlp.pipe``; one record per input, in input order.

    Invalid texts and texts on which the pipeline raises become error records, so one bad
    document never takes the batch (or the run) down with it.

    Scores are reproducible given the same ``nlp.pipe`` batches: a doc padded into a batch
    of longer docs can get scores that differ in the last float32 bits. The valid texts are
    cut into batches of ``batch_size`` from the first, so callers that hand over the same
    stream in multiples of ``batch_size`` get identical scores.

    ``spans_key`` defaults to the key the pipeline's span component writes (see
    :func:`resolve_spans_key`).
    """
    if len(ids) != len(texts):
        raise ValueError(f"got {len(ids)} ids for {len(texts)} texts")
    batch_size = check_positive("batch_size", batch_size)
    spans_key = resolve_spans_key(nlp, spans_key)
    records: List[Optional[Record]] = [None] * len(texts)
    good: List[Tuple[int, str]] = []
    for i, value in enumerate(texts):
        text, reason = check_text(value, max_chars)
        if reason is not None:
            records[i] = {"id": ids[i], "error": reason}
        else:
            good.append((i, text))  # type: ignore[arg-type]
    done: Dict[int, Record] = {}
    # The memory zone frees the strings interned for these docs; the records hold plain
    # Python copies, so they outlive it.
    with _memory_zone(nlp):
        pos = 0
        while pos < len(good):
            try:
                _pipe_records(nlp, good[pos:], ids, spans_key, batch_size, done)
                break
            except Exception:
                # Docs come out a whole batch at a time, so the failed batch starts right
                # after the last doc done. Find its culprit(s) one text at a time, then go
                # on with the rest in the same batches as before.
                pos = len(done)
                end = min(pos + batch_size, len(good))
                for item in good[pos:end]:
                    try:
                        _pipe_records(nlp, [item], ids, spans_key, 1, done)
                    except Exception as err:  # noqa: BLE001 - reported in the record
                        done[item[0]] = {
                            "id": ids[item[0]],
                            "error": f"pipeline error: {type(err).__name__}: {err}",
                        }
                pos = end
    for i, record in done.items():
        records[i] = record
    return [r for r in records if r is not None]


def annotate_texts(
    nlp: Language,
    texts: Iterable[Any],
    *,
    ids: Optional[Iterable[Any]] = None,
    chunk_size: int = 1000,
    spans_key: Optional[str] = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_chars: Optional[int] = DEFAULT_MAX_CHARS,
) -> Iterator[Record]:
    """Stream records for an iterable of texts, about ``chunk_size`` texts per memory zone.

    ``ids`` defaults to each text's position (0, 1, ...). ``chunk_size`` is rounded up to a
    multiple of ``batch_size``. Bad arguments raise here, not at the first record.
    """
    batch_size = check_positive("batch_size", batch_size)
    chunk_size = check_positive("chunk_size", chunk_size)
    spans_key = resolve_spans_key(nlp, spans_key)
    # Whole batches per chunk, so the nlp.pipe batches (and scores) match one long pipe.
    chunk_size = -(-chunk_size // batch_size) * batch_size
    return _annotate_chunks(nlp, texts, ids, chunk_size, spans_key, batch_size, max_chars)


def _annotate_chunks(
    nlp: Language,
    texts: Iterable[Any],
    ids: Optional[Iterable[Any]],
    chunk_size: int,
    spans_key: str,
    batch_size: int,
    max_chars: Optional[int],
) -> Iterator[Record]:
    kwargs: Dict[str, Any] = {
        "spans_key": spans_key,
        "batch_size": batch_size,
        "max_chars": max_chars,
    }
    id_iter = iter(ids) if ids is not None else None
    chunk_ids: List[Any] = []
    chunk_texts: List[Any] = []
    for n, text in enumerate(texts):
        chunk_ids.append(next(id_iter) if id_iter is not None else n)
        chunk_texts.append(text)
        if len(chunk_texts) >= chunk_size:
            yield from annotate_batch(nlp, chunk_ids, chunk_texts, **kwargs)
            chunk_ids, chunk_texts = [], []
    if chunk_texts:
        yield from annotate_batch(nlp, chunk_ids, chunk_texts, **kwargs)
