"""The docs work as written: README.md, project/README.md and docs/*.md.

Convention: a fenced shell block (bash, sh, shell, console) or Python block is run by
these tests as written, unless its first line is a comment that starts with `# example`
(an illustration: a cluster, a GPU, hours of training, your own files) or `# set-up`
(installs packages: the fresh-clone run of `bash scripts/demo.sh` and `bash .ci/run`
covers those). Marked blocks are still checked statically: the weasel commands and
variables they name exist, the CLI options parse, the extras exist.

The slow tests run every unmarked shell block, in document order, with bash:
project/README.md's in a copy of the project with a tiny German corpus at the paths the
README names, and README.md's and docs/'s in a folder holding `config.cfg` (the project's
cpu.cfg), `train.spacy`, `dev.spacy`, `texts.jsonl` and the project's configs and scripts.
The one change to what a reader would run: SPACY_CONFIG_OVERRIDES cuts every `spacy train`
(direct or through weasel) to a few steps.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
import spacy
from spacy.tokens import DocBin
from weasel.util import load_project_config

REPO = Path(__file__).resolve().parent.parent
PROJECT = REPO / "project"
README = REPO / "README.md"
PROJECT_README = PROJECT / "README.md"
DOC_PAGES = sorted((REPO / "docs").glob("*.md"))
# The user-facing pages; the project's generated BENCHMARKS.md and LONG_DOCS.md are not.
DOC_FILES = [README, PROJECT_README, *DOC_PAGES]
SHELL = {"bash", "sh", "shell", "console"}
MARKERS = ("# example", "# set-up")
RESULTS_START = "<!-- results:start -->"
RESULTS_END = "<!-- results:end -->"
GENERATED = ["assets", "corpus", "training", "metrics", "packages", "visualize", "project.lock"]
# Every `spacy train`, also inside weasel commands, stops after a few steps (spaCy lets the
# environment's overrides win over the command line's).
BUDGET = "--training.max_steps 10 --training.eval_frequency 5"


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    @property
    def marked(self) -> bool:
        first = self.text.lstrip("\n").split("\n", 1)[0].strip()
        return first.startswith(MARKERS)

    def commands(self) -> List[List[str]]:
        """Each command as words: continuation lines joined, comments dropped, a leading
        VAR=value environment prefix dropped."""
        joined = re.sub(r"\\\n", " ", self.text)
        commands = []
        for line in joined.splitlines():
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
                words = words[1:]
            if words:
                commands.append(words)
        return commands


def blocks(path: Path) -> List[Block]:
    found: List[Block] = []
    lines = path.read_text(encoding="utf8").split("\n")
    i = 0
    while i < len(lines):
        match = re.match(r"^```(\S*)\s*$", lines[i])
        if match:
            end = lines.index("```", i + 1)
            found.append(Block(path, i + 1, match.group(1), "\n".join(lines[i + 1 : end]) + "\n"))
            i = end
        i += 1
    return found


def shell_blocks(path: Path) -> List[Block]:
    return [b for b in blocks(path) if b.lang in SHELL]


def all_shell_blocks() -> List[Block]:
    return [b for path in DOC_FILES for b in shell_blocks(path)]


def _project() -> Dict:
    return load_project_config(PROJECT)


# --- fast, static checks ------------------------------------------------------------------


def test_every_code_block_has_a_language():
    """An untagged fence could hide a shell command from these tests."""
    bare = [b.where for path in DOC_FILES for b in blocks(path) if not b.lang]
    assert not bare, bare


def test_unmarked_shell_blocks_are_safe_to_run():
    """The slow tests run every unmarked block: it may not install or leave its folder."""
    for block in all_shell_blocks():
        if block.marked:
            continue
        for words in block.commands():
            assert words[0] not in ("pip", "pip3", "cd", "sudo"), (block.where, words)
            assert words[:3] != ["python", "-m", "pip"], (block.where, words)
            assert words[0] in ("python", "python3"), (block.where, words)
    # The tour is not empty: the three kinds of page each have blocks that run.
    for path in (README, PROJECT_README, REPO / "docs" / "training.md"):
        assert any(not b.marked for b in shell_blocks(path)), path


def _weasel_runs(block: Block) -> List[List[str]]:
    return [w[4:] for w in block.commands() if w[:4] == ["python", "-m", "weasel", "run"]]


def test_weasel_run_commands_exist_and_take_the_project_dir_before_options():
    """`weasel run NAME --vars.x ...` reads `--vars.x` as the project folder and fails:
    options come after the folder (`weasel run NAME . --vars.x ...`)."""
    config = _project()
    names = {c["name"] for c in config["commands"]} | set(config["workflows"])
    variables = set(config["vars"])
    checked = 0
    for block in all_shell_blocks():
        for args in _weasel_runs(block):
            assert args and args[0] in names, (block.where, args)
            options = args[1:]
            if options:
                assert not options[0].startswith("-"), (block.where, args, "project dir first")
            for word in options[1:]:
                if word.startswith("--vars."):
                    assert word[len("--vars.") :] in variables, (block.where, word)
            checked += 1
    assert checked >= 5


def test_batch_and_debug_data_commands_parse():
    from spacy_globalpointer.batch.cli import build_parser

    checked = 0
    for block in all_shell_blocks():
        for words in block.commands():
            if words[:3] != ["python", "-m", "spacy_globalpointer"]:
                continue
            parser = build_parser()
            if words[3] == "debug-data":
                # Config overrides (--paths.train PATH) are not the parser's to know.
                args, extra = parser.parse_known_args(words[3:])
                assert all(w.startswith("--") and "." in w for w in extra[::2]), (block.where, extra)
            else:
                args = parser.parse_args(words[3:])
            assert args.command == words[3]
            checked += 1
    assert checked >= 4


def _extras() -> set:
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    return set(setup["options.extras_require"])


def test_install_commands_name_real_extras_and_the_scripts_torch():
    extras = _extras()
    pinned = re.search(r'"torch==([^"]+)"', (REPO / "scripts" / "install.sh").read_text()).group(1)
    text = "\n".join(p.read_text(encoding="utf8") for p in DOC_FILES)
    text += (PROJECT / "configs" / "trf.cfg").read_text(encoding="utf8")
    named = {e.strip() for group in re.findall(r'-e\s+"?\.\.?\[([^\]]+)\]', text) for e in group.split(",")}
    assert named and named <= extras, named - extras
    assert set(re.findall(r"torch==([0-9][0-9.]*[0-9])", text)) == {pinned}
    # The package is on no index: no doc tells anyone to install it from one.
    assert not re.search(r'pip install "?spacy-globalpointer', text)


def _slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_resolve():
    checked = 0
    for path in DOC_FILES:
        text = path.read_text(encoding="utf8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            assert dest.exists(), (path.name, target)
            if anchor:
                headings = re.findall(r"^#+ (.+)$", dest.read_text(encoding="utf8"), flags=re.M)
                assert anchor in {_slug(h) for h in headings}, (path.name, target)
            checked += 1
    assert checked >= 20


def test_readme_is_a_front_page():
    text = README.read_text(encoding="utf8")
    lines = text.split("\n")
    assert lines.count(RESULTS_START) == 1 and lines.count(RESULTS_END) == 1
    start, end = lines.index(RESULTS_START), lines.index(RESULTS_END)
    assert start < end
    hand_written = lines[:start] + lines[end + 1 :]
    assert len(hand_written) <= 230, len(hand_written)
    for command in ("bash scripts/demo.sh", "bash .ci/run"):
        assert command in text
    for page in DOC_PAGES:
        assert f"(docs/{page.name})" in text, page.name


def test_user_docs_speak_of_the_software_not_of_its_making():
    for path in [README, *DOC_PAGES, PROJECT_README]:
        text = path.read_text(encoding="utf8")
        for pattern in (r"\bsessions?\b", r"\btargets? (?:met|missed)\b", r"\*\*[^*]*: (?:met|missed)\b"):
            assert not re.search(pattern, text, flags=re.I), (path.name, pattern)


def test_demo_figures_are_stated_as_about_or_ranges():
    """A fresh demo run moves by a few tenths of F and by thousands of words/s: the
    project README states neither to the decimal."""
    text = PROJECT_README.read_text(encoding="utf8")
    quick = text[text.index("## Quick start") : text.index("## Your own data")]
    quick = re.sub(r"```.*?```", "", quick, flags=re.S)  # the install lines' versions
    assert not re.search(r"\b\d+\.\d\b", quick), quick
    assert "about 94-96" in quick and "13,000-30,000 words/s" in quick


# --- slow: the blocks run as written ----------------------------------------------------


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    # `python` in a block is the interpreter running the tests.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["SPACY_CONFIG_OVERRIDES"] = BUDGET
    env.pop("PYTHONPATH", None)
    return env


def _run_block(block: Block, cwd: Path) -> str:
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block.text],
        cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"{block.where}\n{block.text}\nSTDOUT:\n{result.stdout}\nSTDERR:\n{result.stderr}"
    return result.stdout


def _run_unmarked(paths: List[Path], cwd: Path) -> List[Block]:
    done: set = set()
    ran = []
    for path in paths:
        for block in shell_blocks(path):
            commands = {tuple(words) for words in block.commands()}
            # A block whose commands all ran before, word for word (a page repeating
            # another's command), is not run twice.
            if block.marked or commands <= done:
                continue
            _run_block(block, cwd)
            done |= commands
            ran.append(block)
    return ran


# (text, [(start_char, end_char, label)]): nested organisations and places.
GERMAN = [
    ("Die Universität Heidelberg liegt in Baden-Württemberg.", [(4, 26, "ORG"), (16, 26, "LOC"), (36, 53, "LOC")]),
    ("Die Deutsche Bank in Frankfurt meldet Gewinne.", [(4, 17, "ORG"), (21, 30, "LOC")]),
    ("Anna Schmidt arbeitet bei der Stadt Köln.", [(0, 12, "PER"), (30, 40, "ORG"), (36, 40, "LOC")]),
    ("Die Technische Universität München forscht viel.", [(4, 34, "ORG"), (27, 34, "LOC")]),
    ("Heute regnet es.", []),
]
ENGLISH = [
    ("The University of Cambridge is in England.", [(4, 27, "ORG"), (18, 27, "GPE"), (34, 41, "GPE")]),
    ("Bank of England raised rates.", [(0, 15, "ORG"), (8, 15, "GPE")]),
    ("Apple opened an office in New York City.", [(0, 5, "ORG"), (26, 39, "GPE")]),
    ("Maria Lopez joined the Bank of Spain.", [(0, 11, "PERSON"), (23, 36, "ORG"), (31, 36, "GPE")]),
    ("Nothing to see here.", []),
]


def _write_jsonl(path: Path, data: List[Tuple[str, list]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf8") as f:
        for i, (text, spans) in enumerate(data):
            entities = [{"start": s, "end": e, "label": label, "text": text[s:e]} for s, e, label in spans]
            f.write(json.dumps({"id": str(i), "text": text, "entities": entities}, ensure_ascii=False) + "\n")


def _write_docbin(path: Path, data: List[Tuple[str, list]]) -> None:
    nlp = spacy.blank("en")
    docbin = DocBin()
    for text, spans in data:
        doc = nlp.make_doc(text)
        doc.spans["sc"] = [doc.char_span(s, e, label=label) for s, e, label in spans]
        docbin.add(doc)
    docbin.to_disk(path)


def _offsets(path: Path, lang: str) -> List[List[Tuple[int, int, str]]]:
    docs = DocBin().from_disk(path).get_docs(spacy.blank(lang).vocab)
    return [sorted((s.start_char, s.end_char, s.label_) for s in doc.spans["sc"]) for doc in docs]


@pytest.mark.slow
def test_project_readme_blocks_run(tmp_path):
    """project/README.md's commands, on a German corpus with a test set, in a copy of the
    project: convert (train, dev, test), debug-data, train, evaluate dev and test,
    find-threshold, show, visualize."""
    pytest.importorskip("spacy_globalpointer")
    root = tmp_path / "project"
    shutil.copytree(PROJECT, root, ignore=shutil.ignore_patterns(*GENERATED, "__pycache__", "runs*", "sweeps"))
    data = tmp_path / "data" / "de"
    # A test set that differs from dev, so that a test conversion reading dev would show.
    _write_jsonl(data / "train.jsonl", GERMAN * 4)
    _write_jsonl(data / "dev.jsonl", GERMAN[:3])
    _write_jsonl(data / "test.jsonl", GERMAN[3:])
    ran = _run_unmarked([PROJECT_README], root)
    assert len(ran) >= 2
    # What the README says the steps write.
    for name, source in (("train", GERMAN * 4), ("dev", GERMAN[:3]), ("test", GERMAN[3:])):
        assert _offsets(root / "corpus" / f"{name}.spacy", "de") == [sorted(s) for _, s in source], name
        assert (root / "corpus" / f"{name}.report.json").exists()
    assert spacy.load(root / "training" / "model-best").lang == "de"
    test_metrics = json.loads((root / "metrics" / "test.json").read_text(encoding="utf8"))
    assert {"p", "r", "f"} <= set(test_metrics["overall"])
    assert (root / "metrics" / "dev.json").exists() and (root / "metrics" / "debug-data.json").exists()
    assert "predicted" in (root / "visualize" / "dev.html").read_text(encoding="utf8")


@pytest.mark.slow
def test_convert_without_a_test_set_writes_train_and_dev_only(tmp_path):
    """The test set is optional: without --vars.test_jsonl, convert behaves as before."""
    root = tmp_path / "project"
    shutil.copytree(PROJECT, root, ignore=shutil.ignore_patterns(*GENERATED, "__pycache__", "runs*", "sweeps"))
    _write_jsonl(tmp_path / "train.jsonl", ENGLISH)
    _write_jsonl(tmp_path / "dev.jsonl", ENGLISH[:2])
    block = Block(root, 0, "bash", "python -m weasel run convert . --vars.train_jsonl ../train.jsonl --vars.dev_jsonl ../dev.jsonl\n")
    _run_block(block, root)
    assert sorted(p.name for p in (root / "corpus").iterdir()) == [
        "dev.report.json", "dev.spacy", "train.report.json", "train.spacy",
    ]
    assert _offsets(root / "corpus" / "dev.spacy", "en") == [sorted(s) for _, s in ENGLISH[:2]]


@pytest.mark.slow
def test_readme_and_docs_blocks_run(tmp_path):
    """README.md's and docs/'s commands, in a folder laid out as the pages say."""
    pytest.importorskip("spacy_globalpointer")
    work = tmp_path / "work"
    (work / "project").mkdir(parents=True)
    for part in ("configs", "scripts"):
        shutil.copytree(PROJECT / part, work / "project" / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT / "configs" / "cpu.cfg", work / "config.cfg")
    _write_docbin(work / "train.spacy", ENGLISH * 4)
    _write_docbin(work / "dev.spacy", ENGLISH)
    with (work / "texts.jsonl").open("w", encoding="utf8") as f:
        for i, (text, _) in enumerate(ENGLISH):
            f.write(json.dumps({"id": f"t{i}", "text": text}) + "\n")
    ran = _run_unmarked([README, *DOC_PAGES], work)
    assert len(ran) >= 4
    assert (work / "training" / "model-best" / "config.cfg").exists()
    lines = (work / "spans.jsonl").read_text(encoding="utf8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == [f"t{i}" for i in range(len(ENGLISH))]
    assert "gold" in (work / "visualize.html").read_text(encoding="utf8")


def _python_blocks(path: Path) -> List[Block]:
    return [b for b in blocks(path) if b.lang == "python"]


def _expected_output(path: Path, after: Block) -> Optional[Block]:
    found = blocks(path)
    following = found[found.index(after) + 1 :]
    return following[0] if following and following[0].lang == "text" else None


@pytest.mark.slow
def test_readme_quickstart_prints_what_it_says(tmp_path):
    """The README's Python runs as written and prints the spans the README shows (the
    scores it leaves out as "...": each a probability)."""
    pytest.importorskip("spacy_globalpointer")
    (quickstart,) = [b for b in _python_blocks(README) if not b.marked]
    expected = _expected_output(README, quickstart)
    assert expected is not None
    result = subprocess.run(
        [sys.executable, "-c", quickstart.text], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    printed = result.stdout.strip().splitlines()
    want = [line.rsplit(" ", 1)[0] for line in expected.text.strip().splitlines()]
    assert [line.rsplit(" ", 1)[0] for line in printed] == want, printed
    assert all(0.5 < float(line.rsplit(" ", 1)[1]) <= 1.0 for line in printed), printed


def test_python_blocks_in_docs_are_run_or_marked():
    """Only the README's quickstart runs (above); a Python block elsewhere is marked."""
    unmarked = [b.where for p in DOC_FILES for b in _python_blocks(p) if not b.marked]
    assert unmarked == [f"README.md:{_python_blocks(README)[0].line}"], unmarked
