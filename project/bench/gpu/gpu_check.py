"""GPU checks for the device machine (run from the repo root; see README.md here)."""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy
import spacy
import torch
from spacy.tokens import DocBin
from thinc.api import get_current_ops

sys.path.insert(0, "tests")

from gp_testing import NESTED_TRAIN, make_examples, train_pipeline  # noqa: E402
from test_training import TRAIN_CONFIG  # noqa: E402

from spacy_globalpointer.torch_head import GlobalPointerHead  # noqa: E402

LOAD_ON_CPU = (
    "import sys, json, spacy; nlp = spacy.load(sys.argv[1]); d = nlp(sys.argv[2]); "
    "print(json.dumps([[(s.start, s.end, s.label_) for s in d.spans['sc']], "
    "[float(x) for x in d.spans['sc'].attrs['scores']]]))"
)


def check_head_cuda_equals_cpu() -> None:
    for efficient in (False, True):
        for width, n in ((8, 300), (300, 300), (16, 5000)):
            torch.manual_seed(0)
            module = GlobalPointerHead(96, 5, 64, rope=True, efficient=efficient)
            X = torch.randn(3, n, 96, requires_grad=True)
            y = module(X, width)
            y.sum().backward()
            X_cuda = X.detach().cuda().requires_grad_(True)
            y_cuda = module.cuda()(X_cuda, width)
            y_cuda.sum().backward()
            dy = float((y_cuda.detach().cpu() - y.detach()).abs().max())
            dgrad = float((X_cuda.grad.cpu() - X.grad).abs().max())
            print(f"cuda vs cpu efficient={efficient} n={n} width={width}: max|dy|={dy:.2e} max|dgrad|={dgrad:.2e}")


def check_spacy_on_gpu() -> None:
    print("require_gpu", spacy.require_gpu(0), type(get_current_ops()).__name__)
    for efficient in (False, True):
        nlp, examples = train_pipeline({"model": {"efficient": efficient}}, n_updates=50)
        gp = nlp.get_pipe("global_pointer")
        print("ops", type(gp.model.ops).__name__, "shim device", gp.model.get_ref("head").layers[0].shims[0].device)
        print("efficient", efficient, "eval F", nlp.evaluate(examples)["spans_sc_f"])
        doc = nlp(NESTED_TRAIN[0][0])
        path = tempfile.mkdtemp()
        nlp.to_disk(path)
        gpu_spans = [(s.start, s.end, s.label_) for s in doc.spans["sc"]]
        gpu_scores = numpy.asarray(doc.spans["sc"].attrs["scores"])
        out = subprocess.run(
            [sys.executable, "-c", LOAD_ON_CPU, path, NESTED_TRAIN[0][0]], capture_output=True, text=True, check=True
        )
        cpu_spans, cpu_scores = json.loads(out.stdout.strip().splitlines()[-1])
        same = [tuple(x) for x in cpu_spans] == gpu_spans
        diff = float(numpy.abs(numpy.asarray(cpu_scores) - gpu_scores).max())
        print("GPU-trained model loaded on CPU: same spans", same, "max score diff", diff)


def check_spacy_train_gpu() -> None:
    tmp = Path(tempfile.mkdtemp())
    DocBin(docs=[eg.reference for eg in make_examples(spacy.blank("en"))]).to_disk(tmp / "train.spacy")
    (tmp / "base.cfg").write_text(TRAIN_CONFIG)
    run = [sys.executable, "-m", "spacy"]
    subprocess.run(run + ["init", "fill-config", "base.cfg", "config.cfg"], cwd=tmp, check=True)
    start = time.time()
    args = ["--output", "out", "--paths.train", "train.spacy", "--paths.dev", "train.spacy", "--gpu-id", "0"]
    result = subprocess.run(run + ["train", "config.cfg", *args], cwd=tmp, capture_output=True, text=True)
    print("spacy train --gpu-id 0 rc", result.returncode, f"{time.time() - start:.1f}s")
    print(result.stdout[-1500:])
    print(result.stderr[-1500:])


if __name__ == "__main__":
    print("torch", torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0))
    check_head_cuda_equals_cpu()
    check_spacy_on_gpu()
    check_spacy_train_gpu()
