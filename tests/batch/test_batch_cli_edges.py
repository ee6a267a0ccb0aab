"""The annotate CLI at its edges, driven in a subprocess on real files: unwritable folders,
two runs racing for one output, a Parquet input without the text column, many bad rows,
Ray missing, SIGTERM, the errors file only when there are errors, and progress."""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import pytest
from batch_testing import (
    PACKAGE_ROOT,
    assert_refused,
    read_jsonl,
    temp_files,
    write_texts,
    writing_output,
)
from gp_testing import interruptible

NOBODY = 65534


def _env(extra_path: Sequence[Path] = ()) -> Dict[str, str]:
    env = dict(os.environ)
    parts = [*map(str, extra_path), PACKAGE_ROOT, env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in parts if p)
    return env


def _cmd(*args: Any) -> List[str]:
    return [sys.executable, "-m", "spacy_globalpointer", "annotate", *map(str, args)]


def cli(
    *args: Any,
    extra_path: Sequence[Path] = (),
    preexec: Optional[Callable[[], None]] = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    """The CLI in a subprocess whose stderr is a pipe (not a terminal)."""
    cmd = _cmd(*args)
    try:
        return subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_env(extra_path),
            preexec_fn=preexec,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the CLI hung for {timeout} s: {cmd}")


# --- unwritable folders ------------------------------------------------------------------


def _without_root_powers() -> None:
    """Popen preexec_fn: root writes into any folder whatever its mode; drop the
    capabilities that let it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER: the
    bounding set, so they are gone after exec) so that a folder of mode 555 is read-only
    for the child too."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _read_only_preexec(probe_dir: Path) -> Optional[Callable[[], None]]:
    if os.geteuid() != 0:
        return None
    probe = probe_dir / "probe"
    probe.mkdir(mode=0o555)
    try:
        result = subprocess.run(
            ["touch", str(probe / "x")], preexec_fn=_without_root_powers, capture_output=True
        )
    except (OSError, subprocess.SubprocessError):
        result = None
    finally:
        (probe / "x").unlink(missing_ok=True)
        probe.rmdir()
    if result is None or result.returncode == 0:
        pytest.skip("running as root with no way to make a folder read-only")
    return _without_root_powers


@pytest.mark.slow
@pytest.mark.parametrize("which", ["output", "errors"])
def test_cli_unwritable_folder_is_refused_before_loading(which, tmp_path, texts):
    preexec = _read_only_preexec(tmp_path)
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:3])
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    out = locked / "out.jsonl" if which == "output" else tmp_path / "out.jsonl"
    errors = tmp_path / "errors.jsonl" if which == "output" else locked / "errors.jsonl"
    # A model that cannot load: the folder has to be checked before loading it.
    proc = cli(tmp_path / "no-such-model", corpus, out, "--errors", errors, preexec=preexec)
    locked.chmod(0o755)
    assert_refused(proc, str(out if which == "output" else errors), "ermission denied")
    assert ".tmp" not in proc.stderr, proc.stderr  # the user's path, not a temporary one
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert sorted(p.name for p in locked.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl", "locked"]


# --- two runs, one output ------------------------------------------------------------------


@pytest.mark.slow
def test_cli_concurrent_runs_never_replace_each_others_output(tmp_path, model_path, texts):
    """Two runs that both found the output free: the one that finishes second must not
    replace the first one's output (neither has --overwrite). The first is paused (SIGSTOP)
    once it is writing, the second runs to its end, then the first goes on."""
    long_in = write_texts(tmp_path / "long.jsonl", texts * 30)  # 6,000 texts: seconds, to pause it in
    short_in = write_texts(tmp_path / "short.jsonl", texts[:7])
    out = tmp_path / "out.jsonl"
    common = ["--quiet", "--batch-size", "25", "--chunk-size", "25"]
    first = subprocess.Popen(_cmd(model_path, long_in, out, *common), env=_env(), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not temp_files(tmp_path):  # past its checks
            assert first.poll() is None, first.communicate()[1]
            assert time.monotonic() < deadline, "the first run never started writing"
            time.sleep(0.01)
        first.send_signal(signal.SIGSTOP)
        assert first.poll() is None, "the first run ended before it could be paused"
        second = cli(model_path, short_in, out, *common)
        first.send_signal(signal.SIGCONT)
        first_stderr = first.communicate(timeout=300)[1]
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGCONT)
            first.kill()
            first.wait()
    assert second.returncode == 0, second.stderr
    assert first.returncode != 0, first_stderr
    assert "error: " in first_stderr and str(out) in first_stderr, first_stderr
    assert "Traceback" not in first_stderr, first_stderr
    # The output is the whole of the run that finished first.
    assert len(read_jsonl(out)) == 7
    assert temp_files(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.jsonl", "out.jsonl", "short.jsonl"]


# --- Parquet columns -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("missing", ["text", "id"])
def test_cli_parquet_without_the_column_is_refused(missing, tmp_path, model_path, texts):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    corpus = tmp_path / "in.parquet"
    pq.write_table(pa.table({"doc": ["a", "b"], "body": texts[:2]}), corpus)
    extra = ["--text-field", "body", "--id-field", "id"] if missing == "id" else []
    proc = cli(model_path, corpus, tmp_path / "out.parquet", *extra)
    assert_refused(proc, str(corpus), repr(missing), "columns: 'doc', 'body'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


# --- many bad rows -------------------------------------------------------------------------


def _peak_rss_mb(cmd: List[str], env: Dict[str, str]) -> tuple:
    """Run ``cmd``; its exit code, stderr and peak resident memory (MB) after exec.

    Read from /proc while it runs: the kernel's peak (VmHWM) only grows, so the last value
    read is the peak up to then. (getrusage's ru_maxrss of a child also counts the forked
    copy of this large test process, so it cannot tell.)"""
    peak = 0
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
            except OSError:  # gone between poll() and the read
                pass
            time.sleep(0.02)
        err.seek(0)
        return proc.returncode, err.read().decode(), peak / 1024


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_cli_bad_rows_do_not_pile_up_in_memory(tmp_path, model_path):
    """300,000 bad rows after one good row (which waits for its chunk to fill) against the
    same rows with the good one last: the same peak memory, not 50 MB more."""
    n_bad = 300_000
    good = json.dumps({"text": "IL-2 activates T cells."}) + "\n"
    bad = "7\n" * n_bad  # JSON, but not an object
    first = tmp_path / "good_first.jsonl"
    last = tmp_path / "good_last.jsonl"
    first.write_text(good + bad)
    last.write_text(bad + good)
    peaks = {}
    for corpus in (first, last):
        out = tmp_path / (corpus.stem + ".out.jsonl")
        code, stderr, peaks[corpus.stem] = _peak_rss_mb(_cmd(model_path, corpus, out, "--quiet"), _env())
        assert code == 0, stderr
        assert f"errors {n_bad}" in stderr, stderr
        assert len(read_jsonl(out)) == 1
        errors = Path(str(out) + ".errors.jsonl").read_text().splitlines()
        assert len(errors) == n_bad
        lines = [json.loads(e)["line"] for e in errors[:3] + errors[-3:]]
        start = 2 if corpus is first else 1
        assert lines == [start, start + 1, start + 2, start + n_bad - 3, start + n_bad - 2, start + n_bad - 1]
    # 300,000 held rows take about 50 MB; a few thousand rows of slack are allowed.
    assert peaks["good_first"] - peaks["good_last"] < 10, peaks


# --- Ray not installed ---------------------------------------------------------------------


@pytest.mark.slow
def test_cli_ray_address_without_ray_data_says_so_alone(tmp_path, model_path, texts):
    # A "ray" without ray.data on the path: Ray core installed, the data extra not.
    fake = tmp_path / "fake"
    (fake / "ray").mkdir(parents=True)
    (fake / "ray" / "__init__.py").write_text("")
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:3])
    proc = cli(model_path, corpus, tmp_path / "out.jsonl", "--ray-address", "local", extra_path=[fake])
    assert_refused(proc, "Ray Data is not installed", "pip install")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl", "fake"]


# --- SIGTERM -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cli_stopped_run_says_so(signum, tmp_path, model_path, texts):
    # 200,000 texts: about a minute of work here, so that no machine finishes them before
    # the signal arrives (20,000 took 6 s, too close)
    corpus = write_texts(tmp_path / "corpus.jsonl", texts * 1000)
    out = tmp_path / "out.jsonl"
    out.write_text("old output\n")
    cmd = _cmd(model_path, corpus, out, "--overwrite", "--quiet", "--chunk-size", "25")
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=_env(), preexec_fn=interruptible)
    try:
        deadline = time.monotonic() + 120
        # Writing: a temporary output with some lines in it.
        while not writing_output(tmp_path):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the run never started writing"
            time.sleep(0.02)
        proc.send_signal(signum)
        stderr = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signum, (proc.returncode, stderr)
    assert "interrupted" in stderr and "no output written" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    assert out.read_text() == "old output\n"
    assert temp_files(tmp_path) == []


# --- the errors file -----------------------------------------------------------------------


@pytest.mark.slow
def test_cli_errors_file_only_when_there_are_errors(tmp_path, model_path, texts):
    clean = write_texts(tmp_path / "clean.jsonl", texts[:4])
    out = tmp_path / "out.jsonl"
    errors = Path(str(out) + ".errors.jsonl")
    # A bad line: the errors file holds it, and the summary says where it is.
    dirty = tmp_path / "dirty.jsonl"
    dirty.write_text(clean.read_text() + "not json\n")
    proc = cli(model_path, dirty, out)
    assert proc.returncode == 0, proc.stderr
    assert [e["line"] for e in read_jsonl(errors)] == [5]
    assert str(errors) in proc.stderr, proc.stderr
    # A run without errors writes none, and replacing that output removes the old
    # errors, which described another run.
    proc = cli(model_path, clean, out, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert len(read_jsonl(out)) == 4
    assert not errors.exists()
    assert "errors 0," in proc.stderr and "errors.jsonl" not in proc.stderr, proc.stderr
    assert temp_files(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.jsonl", "dirty.jsonl", "out.jsonl"]


# --- progress ------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_progress_only_on_a_terminal_unless_asked(tmp_path, model_path, texts):
    corpus = write_texts(tmp_path / "corpus.jsonl", texts[:60])
    size = corpus.stat().st_size
    # stderr is a pipe (a log): the summary line only.
    proc = cli(model_path, corpus, tmp_path / "a.jsonl")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr
    assert proc.stderr.startswith("read 60, annotated 60"), proc.stderr
    # On a terminal it is on by default, and knows the total (the file's bytes): 100% at
    # the end. (--progress in a log: the Parquet test below.)
    master, slave = pty.openpty()
    # A new pty has no size (0 columns), and tqdm draws nothing in 0 columns.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    term = subprocess.Popen(
        _cmd(model_path, corpus, tmp_path / "c.jsonl"), env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave
    )
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            elif term.poll() is not None:
                break
        term.wait(timeout=60)
    finally:
        os.close(master)
        if term.poll() is None:
            term.kill()
            term.wait()
    assert term.returncode == 0, seen
    assert b"100%" in seen and f"{size / 1024:.2f}k/{size / 1024:.2f}k".encode() in seen, seen
    assert b"texts=60" in seen, seen


# --- the Parquet progress total ------------------------------------------------------------


@pytest.mark.slow
def test_cli_parquet_progress_counts_rows(tmp_path, model_path, texts):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    corpus = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": texts[:30]}), corpus)
    proc = cli(model_path, corpus, tmp_path / "out.parquet", "--progress")
    assert proc.returncode == 0, proc.stderr
    assert "100%" in proc.stderr and "30/30" in proc.stderr, proc.stderr
