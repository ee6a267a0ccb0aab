"""Command line: ``python -m spacy_globalpointer annotate MODEL INPUT OUTPUT`` and
``python -m spacy_globalpointer debug-data CONFIG`` (see :mod:`spacy_globalpointer.debug_data`).

``annotate`` reads JSON lines (``.jsonl``/``.json``/``.ndjson``) or Parquet (``.parquet``),
annotates locally with ``nlp.pipe`` or on a Ray cluster (``--ray-address``), and writes JSON
lines or Parquet in input order. Input that cannot be annotated goes to the errors file
(JSON lines: line number, id, reason; written only when there are errors); the run carries
on and the summary counts everything. See :func:`~spacy_globalpointer.batch.run.annotate_file` for what a run
guarantees about its output files.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any, Dict, Optional, Sequence

import srsly

from ..debug_data import DebugDataError, check_json_path, debug_data, print_report, write_json
from .core import DEFAULT_BATCH_SIZE, DEFAULT_MAX_CHARS, AnnotateError
from .engines import RayOptions
from .run import AnnotateOptions, annotate_file


def _positive_int(value: str) -> int:
    # A non-positive size either drops every record, loops forever or crashes torch.
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {number}")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value!r}") from None
    if not number > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return number


# Ray options and their defaults, by argparse dest.
RAY_DEFAULTS: Dict[str, Any] = {"workers": 1, "cpus_per_worker": 1.0, "ray_batch_size": 256}


def add_annotate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("annotate", help="annotate a JSON lines or Parquet file")
    p.add_argument("model", help="pipeline directory or installed package name")
    p.add_argument("input", type=Path, help="input .jsonl or .parquet")
    p.add_argument("output", type=Path, help="output .jsonl or .parquet")
    p.add_argument("--text-field", default="text")
    p.add_argument("--id-field", default=None, help="default: the line (row) number, from 1")
    p.add_argument(
        "--spans-key",
        default=None,
        help="doc.spans key to read (default: the one the pipeline's span component writes)",
    )
    p.add_argument(
        "--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE, help="nlp.pipe batch size"
    )
    p.add_argument(
        "--max-chars", type=_positive_int, default=DEFAULT_MAX_CHARS, help="longer texts are errors"
    )
    p.add_argument(
        "--ray-address", default=None, help='Ray cluster address, or "local" to start one'
    )
    # The Ray options default to None so that one given without --ray-address is refused
    # rather than ignored.
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help=f"Ray actors (each loads the pipeline; default {RAY_DEFAULTS['workers']})",
    )
    p.add_argument(
        "--cpus-per-worker",
        type=_positive_float,
        default=None,
        help=f"Ray CPUs (torch threads) per actor (default {RAY_DEFAULTS['cpus_per_worker']})",
    )
    p.add_argument(
        "--ray-batch-size",
        type=_positive_int,
        default=None,
        help="rows per Ray batch, rounded down to whole --batch-size batches "
        f"(default {RAY_DEFAULTS['ray_batch_size']})",
    )
    p.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=None,
        help="valid rows held in memory at a time (default 1000 locally, 100000 on Ray)",
    )
    p.add_argument(
        "--errors",
        type=Path,
        default=None,
        help="rows that could not be annotated, written only if there are any "
        "(default: OUTPUT.errors.jsonl)",
    )
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch threads for a local run (default: torch's)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output and errors file (an old errors file is removed "
        "when the run has no errors)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr with the total and the time left "
        "(default: only when stderr is a terminal)",
    )
    p.add_argument(
        "--quiet", action="store_false", dest="progress", help="the same as --no-progress"
    )


def parse_overrides(args: Sequence[str]) -> Dict[str, Any]:
    """``--section.key VALUE`` or ``--section.key=VALUE`` pairs; values are read as JSON
    where they parse, else kept as strings (as ``spacy train`` does)."""
    overrides: Dict[str, Any] = {}
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if not arg.startswith("--") or "." not in arg:
            raise ValueError(
                f"unrecognized argument {arg!r} (config overrides look like --paths.train PATH)"
            )
        name, sep, value = arg[2:].partition("=")
        if not sep:
            value = rest.pop(0) if rest and not rest[0].startswith("--") else "true"
        try:
            overrides[name] = srsly.json_loads(value)
        except ValueError:
            overrides[name] = value
    return overrides


def add_debug_data_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "debug-data",
        help="report on the spans of a global_pointer component's training data",
        description="Config overrides (--paths.train PATH ...) go after CONFIG. Exit status: "
        "0, 1 when the report finds that training will fail, 2 on an error.",
    )
    p.add_argument("config", type=Path, help="training config (.cfg)")
    p.add_argument(
        "--component", default=None, help="the global_pointer component (default: the only one)"
    )
    p.add_argument(
        "--json", type=Path, default=None, dest="json_path", help="also write the report here"
    )


def run_debug_data(
    args: argparse.Namespace, extra: Sequence[str], parser: argparse.ArgumentParser
) -> int:
    try:
        overrides = parse_overrides(extra)
    except ValueError as err:
        parser.error(str(err))
    try:
        if args.json_path is not None:
            check_json_path(args.json_path)
        report = debug_data(args.config, overrides, args.component)
        print_report(report)
        if args.json_path is not None:
            write_json(report, args.json_path)
    except DebugDataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 1 if report["fatal"] else 0  # 1: the report says training will fail


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m spacy_globalpointer")
    sub = parser.add_subparsers(dest="command", required=True)
    add_annotate_parser(sub)
    add_debug_data_parser(sub)
    return parser


def annotate_options(args: argparse.Namespace) -> AnnotateOptions:
    """The run's options from the parsed ``annotate`` arguments."""
    ray = None
    # The Ray options given on the command line (their defaults are None: see the parser).
    given = {name: getattr(args, name) for name in RAY_DEFAULTS if getattr(args, name) is not None}
    if args.ray_address is not None:
        if args.threads is not None:
            raise AnnotateError(
                "--threads sets the torch threads of a local run; on Ray each actor runs "
                "--cpus-per-worker threads"
            )
        settings = {**RAY_DEFAULTS, **given}
        ray = RayOptions(
            address=args.ray_address,
            workers=settings["workers"],
            cpus_per_worker=settings["cpus_per_worker"],
            batch_size=settings["ray_batch_size"],
        )
    elif given:
        raise AnnotateError(
            f"{', '.join('--' + name.replace('_', '-') for name in given)} needs --ray-address (locally torch uses the cores; "
            "--threads sets how many)"
        )
    return AnnotateOptions(
        text_field=args.text_field,
        id_field=args.id_field,
        spans_key=args.spans_key,
        batch_size=args.batch_size,
        max_chars=args.max_chars,
        chunk_size=args.chunk_size,
        threads=args.threads,
        ray=ray,
        overwrite=args.overwrite,
        progress=args.progress,
    )


class Terminated(BaseException):
    """SIGTERM (kill, a job scheduler), raised like Ctrl-C's KeyboardInterrupt so that the
    temporary files are removed. A BaseException, so that no ``except Exception`` on the
    way (the per-text error handling) takes it for a failed text."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminate(signum: int, frame: Optional[FrameType]) -> None:
    raise Terminated(signum)


def run_annotate(args: argparse.Namespace) -> int:
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        counts = annotate_file(
            args.model, args.input, args.output, annotate_options(args), errors_path=args.errors
        )
    except AnnotateError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C); no output written", file=sys.stderr)
        return 128 + signal.SIGINT
    except Terminated as stop:
        print(
            f"error: interrupted ({signal.Signals(stop.signum).name}); no output written",
            file=sys.stderr,
        )
        return 128 + stop.signum
    finally:
        signal.signal(signal.SIGTERM, previous)
    errors = f" (in {counts['errors_path']})" if counts["errors"] else ""
    print(
        f"read {counts['read']}, annotated {counts['annotated']}, "
        f"errors {counts['errors']}{errors}, spans {counts['spans']} in {counts['seconds']} s "
        f"({counts['texts_per_second']} texts/s)",
        file=sys.stderr,
    )
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    # debug-data takes config overrides (--paths.train PATH) that no parser can list.
    args, extra = parser.parse_known_args(argv)
    if args.command == "debug-data":
        return run_debug_data(args, extra, parser)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return run_annotate(args)


if __name__ == "__main__":
    sys.exit(main())
