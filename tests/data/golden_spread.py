"""How far the golden pipeline's float32 results move on this machine (see test_golden.py).

Recomputes the golden raw scores, probabilities, loss and gradients under settings that
change the float32 rounding without changing the maths: torch thread counts (1, 2), batch
compositions (all texts at once, one by one, reversed, beside a long doc, in pairs) and
sizes (1, 2, 16 in nlp.pipe), the same weights evaluated in float64 (the exact result,
to float32's rounding of the output: how large this computation's rounding errors are),
and, when run as the driver, other SIMD/BLAS code paths chosen by environment variables
(torch's ATEN_CPU_CAPABILITY, MKL's MKL_ENABLE_INSTRUCTIONS, BLIS's BLIS_ARCH_TYPE), each
in a fresh process. Prints the largest difference from the golden file and that
difference as a share of the test's tolerance (1.0 would fail the test):

    PYTHONPATH=.:tests python tests/data/golden_spread.py          # driver: every setting
    PYTHONPATH=.:tests python tests/data/golden_spread.py --one    # this process only
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy
import spacy
import torch
from spacy.language import Language
from thinc.backends.numpy_ops import NumpyOps

DATA = Path(__file__).resolve().parent
sys.path.insert(0, str(DATA.parent))
import test_golden  # noqa: E402

# The code paths another x86 CPU would take, each in a fresh process. A library ignores
# a value it does not know (MKL is linked into torch's CPU wheel and may ignore its
# variable): a row equal to the default's says that it changed nothing here.
ENVIRONMENTS: List[Dict[str, str]] = [
    {},
    {"ATEN_CPU_CAPABILITY": "default"},
    {"ATEN_CPU_CAPABILITY": "avx2"},
    {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    {"BLIS_ARCH_TYPE": "generic"},
    {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "BLIS_ARCH_TYPE": "generic"},
]
# A long text to batch the golden ones with: other padded shapes and matmul sizes.
FILLER = " ".join(["The Bank of England and the University of Tokyo met in Osaka ."] * 6)


def compositions(n: int) -> Dict[str, List[List[int]]]:
    """Batches of text indices (-1: the filler) whose results are compared per text."""
    return {
        "all": [list(range(n))],
        "one by one": [[i] for i in range(n)],
        "reversed": [list(reversed(range(n)))],
        "beside a long doc": [[-1, *range(n), -1]],
        "pairs": [list(range(i, min(n, i + 2))) for i in range(0, n, 2)],
    }


class Spread:
    """The largest |difference| and |difference| / tolerance seen, per row."""

    def __init__(self) -> None:
        self.rows: Dict[str, List[float]] = {}

    def note(self, row: str, actual: Any, reference: Any, tolerance: Any) -> None:
        actual = numpy.asarray(actual, dtype="float64")
        if not actual.size:
            return
        reference = numpy.asarray(reference, dtype="float64").reshape(actual.shape)
        error = numpy.abs(actual - reference)
        tolerance = numpy.broadcast_to(numpy.asarray(tolerance, dtype="float64"), error.shape)
        # a value with a tolerance of 0 (a gradient of exactly 0) must not move at all
        share = numpy.where(error > 0, numpy.inf, 0.0)
        numpy.divide(error, tolerance, out=share, where=tolerance > 0)
        old = self.rows.get(row, [0.0, 0.0])
        self.rows[row] = [max(old[0], float(error.max())), max(old[1], float(share.max()))]


def raw_scores(nlp: Language, golden: Dict[str, Any], spread: Spread, row: str,
               batches: Optional[List[List[int]]] = None) -> None:
    texts = golden["texts"]
    for name, expected in golden["components"].items():
        pipe = nlp.get_pipe(name)
        for batch in batches or [list(range(len(texts)))]:
            docs = [nlp.make_doc(FILLER if i < 0 else texts[i]) for i in batch]
            for i, y in zip(batch, pipe.predict(docs)):
                if i >= 0:
                    reference = numpy.asarray(expected["raw_scores"][i], dtype="f")
                    spread.note(row, y, reference, test_golden.score_tolerance(reference))


def measure() -> Spread:
    golden = json.loads((DATA / "golden_predictions.json").read_text(encoding="utf8"))
    nlp = spacy.load(DATA / "golden_pipeline")
    texts = golden["texts"]
    spread = Spread()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for composition, batches in compositions(len(texts)).items():
            raw_scores(nlp, golden, spread, f"raw scores, {threads} thread(s), {composition}", batches)
        for name, expected in golden["components"].items():
            pipe = nlp.get_pipe(name)
            for batch_size in (1, 2, 16):
                docs = list(nlp.pipe(texts, batch_size=batch_size))
                for doc, probabilities, raw in zip(docs, expected["probabilities"], expected["raw_scores"]):
                    tolerance = test_golden.probability_tolerance(numpy.asarray(raw, dtype="f"))
                    spread.note(f"probabilities, {threads} thread(s)", doc.spans[pipe.key].attrs["scores"],
                                probabilities, tolerance)
            loss, d_scores, d_encoded, scores = test_golden.loss_and_gradients(nlp, name)
            tolerances = test_golden.training_tolerances(expected, scores)
            spread.note(f"loss, {threads} thread(s)", loss, expected["train_loss"], tolerances["loss"])
            for actual, reference, tolerance in zip(d_scores, expected["train_d_scores"], tolerances["d_scores"]):
                spread.note(f"d_scores, {threads} thread(s)", actual, reference, tolerance.reshape(actual.shape))
            for actual, reference, tolerance in zip(d_encoded, expected["train_d_encoded"], tolerances["d_encoded"]):
                spread.note(f"d_encoded, {threads} thread(s)", actual, reference, tolerance)
    raw_scores(as_float64(nlp), golden, spread, "raw scores, float64 weights and arithmetic")
    return spread


def as_float64(nlp: Language) -> Language:
    """The pipeline with every weight in float64 (its outputs still rounded to float32)."""
    original = NumpyOps.gemm

    def gemm(self, x, y, out=None, trans1=False, trans2=False):  # BLIS gemm is float32 only
        if x.dtype != numpy.float64 and y.dtype != numpy.float64:
            return original(self, x, y, out=out, trans1=trans1, trans2=trans2)
        result = (x.T if trans1 else x).astype("float64") @ (y.T if trans2 else y).astype("float64")
        if out is None:
            return result
        out[...] = result
        return out

    NumpyOps.gemm = gemm
    for name in nlp.pipe_names:
        for node in nlp.get_pipe(name).model.walk():
            for param in node.param_names:
                if node.has_param(param):
                    node.set_param(param, node.get_param(param).astype("float64"))
            for shim in node.shims:
                shim._model.double()
    return nlp


def main() -> None:
    if "--one" in sys.argv:
        print(json.dumps(measure().rows))
        return
    root = DATA.parents[1]
    for extra in ENVIRONMENTS:
        env = {**os.environ, **extra, "PYTHONPATH": os.pathsep.join([str(root), str(root / "tests")])}
        out = subprocess.run(
            [sys.executable, __file__, "--one"], env=env, capture_output=True, text=True, check=True
        ).stdout
        rows = json.loads(out.strip().splitlines()[-1])
        print(" ".join(f"{k}={v}" for k, v in extra.items()) or "(no environment variable)")
        for row, (error, share) in rows.items():
            print(f"  {row:52s} max |diff| {error:.3g} = {share:.3g} x tolerance")


if __name__ == "__main__":
    main()
