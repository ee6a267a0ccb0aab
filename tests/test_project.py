"""Tests for the weasel project in project/: converters, configs and the `all`
workflow end to end on the demo corpus."""

import importlib
import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin
from thinc.api import Optimizer
from weasel.util import load_project_config

REPO = Path(__file__).resolve().parent.parent
PROJECT = REPO / "project"
SCRIPTS = PROJECT / "scripts"
GENIA = REPO.parent / "shared" / "data" / "genia"
GENERATED = ["assets", "corpus", "training", "metrics", "packages", "visualize", "project.lock"]


def _script(name: str):
    # The scripts import their sibling helper module as a top-level name.
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    return importlib.import_module(name)


def _docs(docbin: DocBin, lang: str = "en"):
    # Round trip through bytes, as the training corpus reader will see them.
    return list(DocBin().from_bytes(docbin.to_bytes()).get_docs(spacy.blank(lang).vocab))


def _offsets(doc, key: str = "sc"):
    return sorted((s.start_char, s.end_char, s.label_) for s in doc.spans[key])


def _run(args, cwd: Path = REPO, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args}\nSTDOUT:\n{result.stdout}\nSTDERR:\n{result.stderr}"
    return result


def _nested_pairs(spans):
    return [
        (a, b) for a in spans for b in spans
        if a is not b and b.start <= a.start and a.end <= b.end and (a.start, a.end) != (b.start, b.end)
    ]


# --- JSONL converter -------------------------------------------------------------------


def test_jsonl_roundtrip_nested_english():
    convert = _script("convert_jsonl")
    text = "She left the Bank of England for the University of Cambridge in 2019."
    ents = [(13, 28, "ORG"), (21, 28, "GPE"), (37, 60, "ORG"), (51, 60, "GPE"), (37, 47, "X")]
    record = {
        "id": "en-1",
        "text": text,
        "entities": [{"start": s, "end": e, "label": lab, "text": text[s:e]} for s, e, lab in ents],
    }
    docbin, report = convert.convert_records([record], lang="en")
    (doc,) = _docs(docbin)
    assert doc.text == text
    assert _offsets(doc) == sorted(ents)
    assert report["misaligned"] == 0 and report["spans_kept"] == len(ents)
    assert len(_nested_pairs(list(doc.spans["sc"]))) == 3


def test_jsonl_roundtrip_chinese():
    convert = _script("convert_jsonl")
    text = "北京大学的张伟教授在上海交通大学做报告。"
    ents = [(0, 4, "organization"), (0, 2, "address"), (5, 7, "name"), (10, 16, "organization"), (10, 12, "address")]
    record = {"id": "zh-1", "text": text, "entities": [{"start": s, "end": e, "label": lab} for s, e, lab in ents]}
    docbin, report = convert.convert_records([record], lang="zh")
    (doc,) = _docs(docbin, "zh")
    # spacy.blank("zh") segments per character, so every Chinese offset is a token edge.
    assert len(doc) == len(text)
    assert doc.text == text
    assert _offsets(doc) == sorted(ents)
    assert [doc.text[s:e] for s, e, _ in _offsets(doc)] == [text[s:e] for s, e, _ in sorted(ents)]
    assert report["misaligned"] == 0


def _misaligned_record():
    # "Inter" ends inside the token "Interleukin-2": no strict token alignment exists.
    text = "Interleukin-2 activates T cells."
    return {"id": "m-1", "text": text, "entities": [
        {"start": 0, "end": 5, "label": "X", "text": "Inter"},
        {"start": 24, "end": 31, "label": "cell_type", "text": "T cells"},
    ]}


def test_misaligned_spans_are_counted_and_listed():
    convert = _script("convert_jsonl")
    docbin, report = convert.convert_records([_misaligned_record()], alignment=convert.Alignment.strict)
    assert report["misaligned"] == 1
    assert report["misaligned_spans"][0]["text"] == "Inter"
    assert report["spans_in"] == report["spans_kept"] + report["misaligned"]
    assert _offsets(_docs(docbin)[0]) == [(24, 31, "cell_type")]

    _, expanded = convert.convert_records([_misaligned_record()], alignment=convert.Alignment.expand)
    assert expanded["misaligned"] == 0 and expanded["adjusted"] == 1 and expanded["spans_kept"] == 2

    split_bin, split = convert.convert_records([_misaligned_record()], alignment=convert.Alignment.split)
    assert split["misaligned"] == 0 and split["adjusted"] == 0
    assert _offsets(_docs(split_bin)[0]) == [(0, 5, "X"), (24, 31, "cell_type")]


@pytest.mark.slow
def test_convert_cli_writes_report(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(_misaligned_record()) + "\n", encoding="utf8")
    out = tmp_path / "out.spacy"
    result = _run([SCRIPTS / "convert_jsonl.py", src, out], cwd=PROJECT)
    assert "misaligned=1" in result.stdout and "'Inter'" in result.stdout
    report = json.loads(out.with_suffix(".report.json").read_text(encoding="utf8"))
    assert report["misaligned"] == 1 and report["misaligned_spans"][0]["start"] == 0
    assert out.exists()


# --- GENIA converter -------------------------------------------------------------------


@pytest.mark.skipif(
    not (GENIA / "GENIAcorpus3.02.tgz").exists(),
    reason=f"GENIA tgz not found at {GENIA}/GENIAcorpus3.02.tgz (shared benchmark data absent)",
)
@pytest.mark.slow
def test_genia_converter_matches_published_counts(tmp_path):
    genia = _script("convert_genia")
    stats = genia.convert(GENIA / "GENIAcorpus3.02.tgz", GENIA / "splits", tmp_path)
    assert {s: {k: c[k] for k in ("sentences", "entities")} for s, c in stats.items()} == {
        "train": {"sentences": 15038, "entities": 46203},
        "dev": {"sentences": 1765, "entities": 4714},
        "test": {"sentences": 1732, "entities": 5119},
    }
    docs = list(DocBin().from_disk(tmp_path / "dev.spacy").get_docs(spacy.blank("en").vocab))
    assert len(docs) == 1765 and sum(len(d.spans["sc"]) for d in docs) == 4714
    # The published dev file, rebuilt from the same XML, agrees span for span.
    if (GENIA / "dev.jsonl").exists():
        lines = (GENIA / "dev.jsonl").read_text(encoding="utf8").splitlines()
        gold = [json.loads(line) for line in lines if line.strip()]
        for doc, rec in zip(docs, gold, strict=True):
            assert doc.text == rec["text"]
            assert _offsets(doc) == sorted((e["start"], e["end"], e["label"]) for e in rec["entities"])


# --- configs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny")
    nlp = spacy.blank("en")
    doc = nlp("The Bank of England met.")
    doc.spans["sc"] = [doc.char_span(4, 19, "ORG"), doc.char_span(12, 19, "GPE")]
    for name in ("train", "dev"):
        DocBin(docs=[doc]).to_disk(path / f"{name}.spacy")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("config", ["cpu.cfg", "bilstm.cfg", "trf.cfg"])
def test_configs_fill_and_validate(config, tiny_corpus, tmp_path):
    pytest.importorskip("spacy_globalpointer")
    if config == "trf.cfg":
        pytest.importorskip("spacy_transformers")
    filled = tmp_path / config
    _run(["-m", "spacy", "init", "fill-config", PROJECT / "configs" / config, filled])
    overrides = ["--paths.train", tiny_corpus / "train.spacy", "--paths.dev", tiny_corpus / "dev.spacy"]
    if config == "trf.cfg":
        # A local path: nothing is downloaded, and debug config does not load weights.
        overrides += ["--variables.transformer_name", tmp_path / "no-such-model"]
    # fill-config added nothing the shipped config lacks, so validating one validates both.
    shipped = spacy.util.load_config(PROJECT / "configs" / config, interpolate=False)
    assert spacy.util.load_config(filled, interpolate=False) == shipped
    result = _run(["-m", "spacy", "debug", "config", PROJECT / "configs" / config, *overrides])
    assert "Config is valid" in result.stdout


@pytest.mark.parametrize("config", ["cpu.cfg", "bilstm.cfg", "trf.cfg"])
def test_configs_optimizer_resolves_on_its_own(config):
    """nlp.resume_training() and nlp.create_optimizer() resolve [training.optimizer] alone,
    from the saved, uninterpolated config: it must not refer to other sections."""
    shipped = spacy.util.load_config(PROJECT / "configs" / config, interpolate=False)
    optimizer = spacy.util.registry.resolve({"optimizer": shipped["training"]["optimizer"]})["optimizer"]
    assert isinstance(optimizer, Optimizer)


@pytest.mark.parametrize("config", ["cpu.cfg", "bilstm.cfg", "trf.cfg"])
def test_configs_take_the_tokenizer_of_the_language(config):
    """A user who sets lang = "zh" gets spaCy's Chinese tokenizer (one token a character),
    not the English one that makes a whole clause one token."""
    pytest.importorskip("spacy_globalpointer")
    if config == "trf.cfg":
        pytest.importorskip("spacy_transformers")
    loaded = spacy.util.load_config(PROJECT / "configs" / config, overrides={"nlp.lang": "zh"})
    nlp = spacy.util.load_model_from_config(loaded, auto_fill=True, validate=False)
    assert [t.text for t in nlp.make_doc("患者北京大学医院，发热3天")] == list("患者北京大学医院，发热3天")
    english = spacy.util.load_model_from_config(
        spacy.util.load_config(PROJECT / "configs" / config), auto_fill=True, validate=False
    )
    assert [t.text for t in english.make_doc("Bank of England's")] == ["Bank", "of", "England", "'s"]


# --- the `all` workflow ----------------------------------------------------------------


@pytest.fixture(scope="module")
def project_run(tmp_path_factory):
    """A copy of the project (without generated files) after `weasel run all`."""
    pytest.importorskip("spacy_globalpointer")
    root = tmp_path_factory.mktemp("project") / "project"
    # Benchmark runs and sweeps stay local and may hold trained models: not copied.
    shutil.copytree(PROJECT, root, ignore=shutil.ignore_patterns(*GENERATED, "__pycache__", "runs*", "sweeps"))
    result = _run(
        ["-m", "weasel", "run", "all", root, "--vars.max_steps", "100", "--vars.eval_frequency", "50"],
        cwd=root,
    )
    return root, result.stdout


@pytest.mark.slow
def test_all_workflow_trains_and_predicts_nested(project_run):
    root, stdout = project_run
    metrics = json.loads((root / "metrics" / "dev.json").read_text(encoding="utf8"))
    assert set(metrics["overall"]) == {"p", "r", "f"}
    assert {"ORG", "GPE", "PERSON"} <= set(metrics["per_type"])
    assert all(set(v) == {"p", "r", "f"} for v in metrics["per_type"].values())
    assert metrics["overall"]["f"] > 0.5, metrics["overall"]
    # `show` ends the workflow: nested predictions are printed indented under their parent.
    assert "\n     [GPE]" in stdout
    nlp = spacy.load(root / "training" / "model-best")
    doc = nlp("Analysts at the Bank of England expect the University of Edinburgh to grow.")
    assert _nested_pairs(list(doc.spans["sc"])), [(s.text, s.label_) for s in doc.spans["sc"]]


@pytest.mark.slow
def test_visualize_shows_nested_spans(project_run):
    root, _ = project_run
    _run(["-m", "weasel", "run", "visualize", root], cwd=root)
    html = (root / "visualize" / "dev.html").read_text(encoding="utf8")
    assert html.count("predicted") >= 10 and html.count("gold") >= 10
    # displaCy stacks a span inside another span on a second line (a larger offset).
    assert "top: 40px" in html and "top: 57px" in html


def _site_view(dest: Path) -> Path:
    """A folder of links to what the running interpreter has installed (its site
    directories, first one first), except spacy-globalpointer: its code, dist-info and
    editable-install hooks are left out. Listed in a .pth file of a fresh venv, it gives
    the venv spaCy, torch and the rest offline whether the tests run in a venv (whose
    base interpreter may have none of them) or in a system interpreter. .pth files are
    left out too: they are not read from a folder that a .pth file lists."""
    dest.mkdir()
    dirs = site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
    for directory in map(Path, dirs):
        if not directory.is_dir():
            continue
        for entry in sorted(directory.iterdir()):
            name = entry.name.lower().replace("-", "_")
            link = dest / entry.name
            if "spacy_globalpointer" in name or entry.suffix in (".pth", ".egg-link") or os.path.lexists(link):
                continue
            link.symlink_to(entry)
    return dest


def _venv_run(python: Path, args, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    # -I: no PYTHONPATH, no user site, no current directory on sys.path; the environment
    # is cleaned as well, for what pip might start.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    result = subprocess.run(
        [str(python), "-I", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    if check:
        assert result.returncode == 0, f"{args}\nSTDOUT:\n{result.stdout}\nSTDERR:\n{result.stderr}"
    return result


# Where spacy-globalpointer (module and distribution) and spaCy come from, in the venv.
_PROBE = """
import importlib.metadata as md, importlib.util, json, sys
def dist(name):
    try:
        d = md.distribution(name)
    except md.PackageNotFoundError:
        return None
    return {"version": d.version, "location": str(d.locate_file("")), "direct_url": d.read_text("direct_url.json")}
spec = importlib.util.find_spec("spacy_globalpointer")
out = {"module": spec and spec.origin, "dist": dist("spacy-globalpointer"),
       "spacy": importlib.util.find_spec("spacy").origin}
"""


@pytest.mark.slow
def test_package_installs_and_loads_in_fresh_venv(project_run, tmp_path):
    if not importlib.util.find_spec("build"):
        pytest.skip("the package step builds wheels with 'build': pip install build")
    if not importlib.util.find_spec("pip"):
        pytest.skip("pip is needed to install the wheels")
    root, _ = project_run
    overrides = {"vars.repo_dir": str(REPO)}
    _run(["-m", "weasel", "run", "package", root, "--vars.repo_dir", REPO], cwd=root)
    (command,) = [c for c in load_project_config(root, overrides=overrides)["commands"] if c["name"] == "package"]
    outputs = sorted(root / path for path in command["outputs_no_cache"])
    wheels = sorted((root / "packages").glob("*/dist/*.whl"))
    # Both wheels, under the names the command declares (the version of ../setup.cfg).
    assert wheels == outputs and len(wheels) == 2, (wheels, outputs)
    pipeline_wheel, gp_wheel = wheels
    assert gp_wheel.name.startswith("spacy_globalpointer-"), wheels

    # A venv that has spaCy, torch etc. from the running interpreter, spacy-globalpointer not.
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    purelib = Path(_venv_run(python, ["-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path).stdout.strip())
    (purelib / "outer_site.pth").write_text(f"{_site_view(tmp_path / 'site')}\n", encoding="utf8")
    probe = _PROBE + "print(json.dumps(out))"
    before = json.loads(_venv_run(python, ["-c", probe], tmp_path).stdout)
    assert before["module"] is None and before["dist"] is None, before

    # The pipeline alone does not install: its requirement is on no index (nor in the venv).
    pip = ["-m", "pip", "install", "--no-index", "--disable-pip-version-check"]
    alone = _venv_run(python, [*pip, pipeline_wheel], tmp_path, check=False)
    assert alone.returncode != 0 and "spacy-globalpointer" in alone.stderr, alone.stderr
    # With the wheel beside it, it does; spacy-globalpointer is then the built wheel's.
    _venv_run(python, [*pip, *wheels], tmp_path)
    text = "Analysts at the Bank of England expect the University of Edinburgh to grow."
    code = _PROBE + (
        "import spacy\n"
        "doc = spacy.load('en_globalpointer_demo')(sys.argv[1])\n"
        "out['spans'] = [[s.start_char, s.end_char, s.label_] for s in doc.spans['sc']]\n"
        "print(json.dumps(out))\n"
    )
    after = json.loads(_venv_run(python, ["-c", code, text], tmp_path).stdout)
    assert Path(after["module"]).resolve().is_relative_to(purelib.resolve()), after
    assert Path(after["dist"]["location"]).resolve() == purelib.resolve(), after
    direct_url = json.loads(after["dist"]["direct_url"])
    assert direct_url["url"] == gp_wheel.as_uri() and "dir_info" not in direct_url, direct_url
    assert not Path(after["spacy"]).resolve().is_relative_to(purelib.resolve()), after
    # The installed pipeline is the trained one: the same spans as training/model-best.
    doc = spacy.load(root / "training" / "model-best")(text)
    assert after["spans"] == [[s.start_char, s.end_char, s.label_] for s in doc.spans["sc"]]
    assert after["spans"], after


@pytest.mark.slow
def test_readme_section_is_generated_by_weasel_document(tmp_path):
    readme = tmp_path / "README.md"
    shutil.copy(PROJECT / "README.md", readme)
    _run(["-m", "weasel", "document", PROJECT, "--output", readme])
    assert readme.read_text(encoding="utf8") == (PROJECT / "README.md").read_text(encoding="utf8")
