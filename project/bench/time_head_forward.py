"""The torch head's forward alone on one short sentence (batch size 1): microseconds a call.

    python bench/time_head_forward.py                 # 16 tokens, 5 labels, efficient head
    PYTHONPATH=/tmp/other_checkout python bench/time_head_forward.py   # another version

What an app calling nlp(text) per request pays in the head beyond the encoder, without the
pipeline around it: the figure to compare two versions of torch_head.py by.
"""

import statistics
import time

import torch
import typer
from typing_extensions import Annotated


def main(
    tokens: Annotated[int, typer.Option(help="Sentence length")] = 16,
    labels: Annotated[int, typer.Option(help="Entity labels")] = 5,
    efficient: Annotated[bool, typer.Option(help="Efficient GlobalPointer head")] = True,
    calls: Annotated[int, typer.Option(help="Calls per repeat")] = 2000,
    repeats: Annotated[int, typer.Option(help="Repeats (median reported)")] = 7,
) -> None:
    from spacy_globalpointer.torch_head import GlobalPointerHead

    torch.set_num_threads(1)
    torch.manual_seed(0)
    head = GlobalPointerHead(96, labels, 64, rope=True, efficient=efficient)
    X = torch.randn(1, tokens, 96)
    lengths = torch.tensor([tokens])
    with torch.no_grad():
        for _ in range(200):  # warm-up: caches, allocator
            head(X, tokens, lengths=lengths)
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(calls):
                head(X, tokens, lengths=lengths)
            seconds.append((time.perf_counter() - start) / calls)
    print(f"head forward, {tokens} tokens, {labels} labels, efficient={efficient}: "
          f"{statistics.median(seconds) * 1e6:.1f} us a call (median of {repeats} x {calls})")


if __name__ == "__main__":
    typer.run(main)
