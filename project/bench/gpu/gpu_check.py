import sys, time, json, subprocess, tempfile, os
from pathlib import Path
import numpy, torch
print("torch", torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0), flush=True)
sys.path.insert(0, "tests")
from spacy_globalpointer.torch_head import GlobalPointerHead
# 1. torch head on cuda == cpu, both variants, with row blocks
import spacy_globalpointer.torch_head as th
for efficient in (False, True):
    for width, n in ((8, 300), (300, 300), (16, 5000)):
        torch.manual_seed(0)
        m = GlobalPointerHead(96, 5, 64, rope=True, efficient=efficient)
        X = torch.randn(3, n, 96, requires_grad=True)
        y = m(X, width); y.sum().backward(); g = X.grad.clone()
        mc = m.cuda(); Xc = X.detach().cuda().requires_grad_(True)
        yc = mc(Xc, width); yc.sum().backward()
        print(f"cuda vs cpu eff={efficient} n={n} w={width}: max|dy|={float((yc.cpu()-y).abs().max()):.2e} max|dgrad|={float((Xc.grad.cpu()-g).abs().max()):.2e} scale={float(y.abs().max()):.1f}", flush=True)
# 2. spaCy on GPU
import spacy
from thinc.api import get_current_ops
print("require_gpu", spacy.require_gpu(0), type(get_current_ops()).__name__, flush=True)
from gp_testing import NESTED_TRAIN, train_pipeline
for eff in (False, True):
    nlp, examples = train_pipeline({"model": {"efficient": eff}}, n_updates=50)
    gp = nlp.get_pipe("global_pointer")
    print("ops", type(gp.model.ops).__name__, "shim device", gp.model.get_ref("head").layers[0].shims[0].device)
    print("efficient", eff, "eval", nlp.evaluate(examples)["spans_sc_f"], flush=True)
    doc = nlp(NESTED_TRAIN[0][0])
    print([(s.text, s.label_) for s in doc.spans["sc"]], doc.spans["sc"].attrs["scores"])
    d = tempfile.mkdtemp(); nlp.to_disk(d)
    gpu_spans = [(s.start, s.end, s.label_) for s in doc.spans["sc"]]; gpu_scores = numpy.asarray(doc.spans["sc"].attrs["scores"])
    out = subprocess.run([sys.executable, "-c", "import sys, json, spacy, numpy; nlp=spacy.load(sys.argv[1]); d=nlp(sys.argv[2]); print(json.dumps([[(s.start,s.end,s.label_) for s in d.spans['sc']], [float(x) for x in d.spans['sc'].attrs['scores']]]))", d, NESTED_TRAIN[0][0]], capture_output=True, text=True)
    cpu_spans, cpu_scores = json.loads(out.stdout.strip().splitlines()[-1])
    print("GPU-trained model loaded on CPU: same spans", [tuple(x) for x in cpu_spans] == gpu_spans, "max score diff", float(numpy.abs(numpy.asarray(cpu_scores) - gpu_scores).max()), flush=True)
# 3. spacy train --gpu-id 0
from test_training import TRAIN_CONFIG
from gp_testing import make_examples
from spacy.tokens import DocBin
tmp = Path(tempfile.mkdtemp())
DocBin(docs=[eg.reference for eg in make_examples(spacy.blank("en"))]).to_disk(tmp / "train.spacy")
(tmp / "base.cfg").write_text(TRAIN_CONFIG)
subprocess.run([sys.executable, "-m", "spacy", "init", "fill-config", "base.cfg", "config.cfg"], cwd=tmp, check=True)
t = time.time()
r = subprocess.run([sys.executable, "-m", "spacy", "train", "config.cfg", "--output", "out", "--paths.train", "train.spacy", "--paths.dev", "train.spacy", "--gpu-id", "0"], cwd=tmp, capture_output=True, text=True)
print("spacy train --gpu-id 0 rc", r.returncode, f"{time.time()-t:.1f}s"); print(r.stdout[-1500:]); print(r.stderr[-1500:], flush=True)
