"""The progress bar of a batch run, on stderr."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Protocol, Union

from .readers import ReadPosition, parquet_rows


class ProgressBar(Protocol):
    """What a run needs of a bar, so that a run without one need not check for it."""

    def advance(self, texts: int, position: Optional[ReadPosition]) -> None: ...

    def close(self) -> None: ...


class NoBar:
    """No bar (stderr is not a terminal, or it was turned off)."""

    def advance(self, texts: int, position: Optional[ReadPosition]) -> None:
        pass

    def close(self) -> None:
        pass


class Bar:
    """tqdm against the input's size: bytes of a JSON lines file (counting its lines would
    mean reading it twice), rows of a Parquet file (in its footer); so it shows the total
    and the time left."""

    def __init__(self, input_path: Path, fmt: str) -> None:
        from tqdm import tqdm

        self.by_bytes = fmt == "jsonl"
        if self.by_bytes:
            total = input_path.stat().st_size
            self.bar = tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                mininterval=1.0,
            )
        else:
            total = parquet_rows(input_path)
            self.bar = tqdm(total=total, unit=" texts", file=sys.stderr, mininterval=1.0)

    def advance(self, texts: int, position: Optional[ReadPosition]) -> None:
        if position is None:
            return
        done = position.bytes if self.by_bytes else position.rows
        if self.by_bytes:
            self.bar.set_postfix(texts=texts, refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def progress_bar(enabled: Optional[bool], input_path: Path, fmt: str) -> Union[Bar, NoBar]:
    """A progress bar on stderr; ``enabled=None``: only if stderr is a terminal (a log
    file would fill with bar redraws)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    return Bar(input_path, fmt) if enabled else NoBar()
