"""The project's `package` and `visualize` commands, through weasel, on a tiny Chinese
pipeline put where the workflow's training would have left one."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Example

REPO = Path(__file__).resolve().parent.parent
PROJECT = REPO / "project"
GENERATED = ["assets", "corpus", "training", "metrics", "packages", "visualize", "project.lock"]

TEXTS = [
    ("北京大学位于北京。", [(0, 4, "ORG"), (0, 2, "LOC"), (6, 8, "LOC")]),
    ("张三在上海工作。", [(0, 2, "PER"), (3, 5, "LOC")]),
    ("上海银行在北京有分行。", [(0, 4, "ORG"), (0, 2, "LOC"), (5, 7, "LOC")]),
]


def _weasel(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "weasel", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def zh_project(tmp_path_factory) -> Path:
    """A copy of the project with a tiny trained zh pipeline in training/model-best and
    its gold in corpus/dev.spacy; the project's lang var stays "en"."""
    root = tmp_path_factory.mktemp("zh") / "project"
    shutil.copytree(
        PROJECT, root, ignore=shutil.ignore_patterns(*GENERATED, "__pycache__", "runs*", "sweeps")
    )
    nlp = spacy.blank("zh")  # the default segmenter (characters) needs no other package
    small = {"head_width": 8, "tok2vec": {"embed": {"width": 16}, "encode": {"width": 16}}}
    nlp.add_pipe("global_pointer", config={"model": small})
    examples = []
    for text, spans in TEXTS:
        ref = nlp.make_doc(text)
        ref.spans["sc"] = [ref.char_span(s, e, label=label) for s, e, label in spans]
        examples.append(Example(nlp.make_doc(text), ref))
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(5):
        nlp.update(examples, sgd=optimizer)
    (root / "training").mkdir()
    nlp.to_disk(root / "training" / "model-best")
    (root / "corpus").mkdir()
    DocBin(docs=[eg.reference for eg in examples]).to_disk(root / "corpus" / "dev.spacy")
    return root


@pytest.mark.slow
def test_package_puts_both_wheels_of_a_zh_pipeline_together(zh_project):
    if not importlib.util.find_spec("build"):
        pytest.skip("the package step builds wheels with 'build': pip install build")
    root = zh_project
    # No --vars.lang: the step reads the language from the pipeline.
    result = _weasel("run", "package", root, "--vars.repo_dir", REPO, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = sorted(p.relative_to(root).as_posix() for p in (root / "packages").rglob("*.whl"))
    dist = "packages/zh_globalpointer_demo-0.1.0/dist"
    assert len(wheels) == 2, wheels
    assert wheels[0] == f"{dist}/spacy_globalpointer-0.2.0-py3-none-any.whl", wheels
    assert wheels[1] == f"{dist}/zh_globalpointer_demo-0.1.0-py3-none-any.whl", wheels
    # The printed install line names both wheels (paths from the project folder).
    (line,) = [ln.strip() for ln in result.stdout.splitlines() if ln.strip().startswith("pip install")]
    assert sorted(line.split()[2:]) == wheels, line
    # The project's declared outputs assume lang "en": the step says how to match them.
    assert re.search(r"pass --vars\.lang zh\b", result.stdout), result.stdout


@pytest.mark.slow
def test_visualize_limit_and_spans_key(zh_project):
    root = zh_project
    result = _weasel("run", "visualize", root, "--vars.visualize_limit", 2, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    html = (root / "visualize" / "dev.html").read_text(encoding="utf8")
    assert re.findall(r"#\d+ predicted", html) == ["#0 predicted", "#1 predicted"]
    assert re.findall(r"#\d+ gold", html) == ["#0 gold", "#1 gold"]
    # The gold spans of doc 0 are drawn under the key: 北京大学 as an ORG.
    assert "ORG" in html
    # A key that the pipeline does not write is refused, not drawn empty.
    result = _weasel("run", "visualize", root, "--vars.spans_key", "nested", cwd=root)
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "doc.spans['nested']" in out and "keys written: 'sc'" in out, out
    assert "Traceback" not in out, out
