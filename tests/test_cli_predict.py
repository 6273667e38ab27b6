"""`python -m pos_ner predict` in subprocesses, as a user runs it: outputs that
would destroy an input are refused, a model that cannot be loaded is one line,
every input record is accounted for (N read = M written + K rejected, with
their line numbers), outputs are strict JSON, SIGTERM/SIGINT and write errors
leave no temporary file and no damaged earlier output, and --n-process 2 gives
the entities of one process. The signal tests send their signal when the run
reports a state on stderr (tests/signal_probe.py), never after a guessed delay."""

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional, Tuple

import pytest
import spacy

from pos_ner.io.records import doc_to_entities

from conftest import leftovers, snapshot

TIMEOUT = 240
EARLIER = b'{"line": 1, "text": "an earlier, good output", "entities": []}\n'


def cli(*args, env=None, timeout=TIMEOUT):
    """`python -m pos_ner ARGS` (no POS_NER_DEBUG), its output captured."""
    environment = {key: value for key, value in os.environ.items() if key != "POS_NER_DEBUG"}
    environment.update(env or {})
    command = [sys.executable, "-m", "pos_ner", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)


def one_line_failure(result, code=None) -> str:
    """The single stderr line of a failed run (and that it is one, without a traceback)."""
    assert result.returncode != 0, result.stderr
    if code is not None:
        assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def strict_json(line: str):
    """json.loads that refuses NaN and Infinity, as other JSON parsers do."""

    def refuse(name):
        raise ValueError(f"{name} in the output")

    return json.loads(line, parse_constant=refuse)


def read_jsonl(path: Path):
    return [strict_json(line) for line in path.read_text(encoding="utf8").splitlines()]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("cli_predict")


@pytest.fixture(scope="module")
def text_input(work):
    path = work / "in.txt"
    path.write_text("Anna Berg lives in Paris .\nTom Reed met Mia Cole .\n", encoding="utf8")
    return path


def refusal_case(name, work, model, text_input):
    """(args, what the message says) for one output that must be refused."""
    folder = work / "a_folder"
    folder.mkdir(exist_ok=True)
    out = work / f"{name}.jsonl"
    link = work / "link_to_input.txt"
    if not link.exists():
        link.symlink_to(text_input)
    return {
        "output-is-input": ([text_input, text_input], "the output is also an input"),
        "output-links-to-input": ([text_input, link], "the output is also an input"),
        "output-inside-model": ([text_input, model / "out.jsonl"], "lies inside the input folder"),
        "output-is-a-folder": ([text_input, folder], "is a folder, expected a file path"),
        "rejects-is-input": ([text_input, out, "--rejects", text_input], "the output is also an input"),
        "rejects-is-output": ([text_input, out, "--rejects", out], "the output is also an input"),
    }[name]


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "case",
    [
        "output-is-input",
        "output-inside-model",
        "output-is-a-folder",
        pytest.param("output-links-to-input", marks=SLOW),
        pytest.param("rejects-is-input", marks=SLOW),
        pytest.param("rejects-is-output", marks=SLOW),
    ],
)
def test_outputs_that_would_destroy_an_input_are_refused(case, work, tiny_pipeline_dir, text_input):
    args, expected = refusal_case(case, work, tiny_pipeline_dir, text_input)
    before, model_before = text_input.read_bytes(), snapshot(tiny_pipeline_dir)
    result = cli("predict", tiny_pipeline_dir, *args)
    assert expected in one_line_failure(result, code=1)
    assert text_input.read_bytes() == before
    assert snapshot(tiny_pipeline_dir) == model_before
    assert leftovers(work) == [] and leftovers(tiny_pipeline_dir) == []


@pytest.fixture(scope="module")
def broken_models(tiny_pipeline_dir, work):
    """Copies of the tiny pipeline with one model file truncated, a folder that is no pipeline."""
    models = {}
    for component in ("ner", "transformer"):
        copy = work / f"truncated_{component}"
        shutil.copytree(tiny_pipeline_dir, copy)
        model_file = copy / component / "model"
        with model_file.open("r+b") as file:
            file.truncate(model_file.stat().st_size // 2)
        models[component] = copy
    (work / "not_a_pipeline").mkdir()
    (work / "not_a_pipeline" / "notes.txt").write_text("hello", encoding="utf8")
    models["folder"] = work / "not_a_pipeline"
    models["missing"] = "no_such_model_anywhere"
    return models


@pytest.mark.parametrize(
    "kind,reason",
    [
        ("missing", "no such folder, and no installed package of that name"),
        ("ner", "ner/model is corrupt or truncated"),
        pytest.param("folder", "not a spaCy pipeline folder", marks=SLOW),
        pytest.param("transformer", "transformer/model is corrupt or truncated", marks=SLOW),
    ],
)
def test_model_that_cannot_be_loaded_is_one_line(kind, reason, broken_models, text_input, work):
    output = work / f"kept_{kind}.jsonl"
    output.write_bytes(EARLIER)
    model = broken_models[kind]
    line = one_line_failure(cli("predict", model, text_input, output), code=1)
    assert line.startswith(f"{model}: cannot load the pipeline: ") and reason in line
    assert output.read_bytes() == EARLIER


BAD_UTF8 = b'{"id": 2, "text": "caf\xe9"}'
JSONL_LINES = [
    (b'{"id": 1, "text": "Anna Berg lives in Paris ."}', None),
    (BAD_UTF8, "invalid UTF-8"),
    (b'{"id": 3, "text": "Tom Reed", "score": NaN}', "NaN is not a JSON value"),
    (b'{"id": 4, "text": "Tom Reed", "score": -Infinity}', "-Infinity is not a JSON value"),
    (b'{"text": "Tom Reed", "score": 1e400}', "the number 1e400 is out of range"),
    (b"", None),  # blank: no record
    (b'{"id": "seven", "text": "Mia\\u0000Cole\\u200b met Tom\\u0007 Reed\\ufeff ."}', None),
    (b'{"id": null, "text": "Globex opened an office in Lima ."}', None),
]
TOKEN_LINES = [
    (b'{"tokens": ["Anna", "Berg", "lives", "in", "Oslo"]}', None),
    (b'{"tokens": ["caf\xe9"]}', "invalid UTF-8"),
    (b'{"id": 3, "tokens": ["Anna", "Be\\u200brg"]}', "token 2 contains U+200B"),
    (b'{"id": 4, "tokens": ["Anna\\u0000"]}', "token 1 contains U+0000"),
    (b'{"id": 5, "tokens": ["a\\tb"]}', "token 1 contains U+0009"),
    (b'{"id": 6, "tokens": ["x", "\\ufeffy"]}', "token 2 contains U+FEFF"),
    (b'{"id": 7, "tokens": ["\\u2060"]}', "token 1 contains U+2060"),
    (b'{"id": 8, "tokens": ["Tom", "Reed", "met", "Mia", "Cole"]}', None),
]


@pytest.mark.parametrize("lines", [JSONL_LINES, TOKEN_LINES], ids=["text", "tokens"])
def test_every_record_is_accounted_for(lines, tiny_pipeline_dir, work, request):
    folder = work / request.node.callspec.id
    folder.mkdir()
    source = folder / "in.jsonl"
    source.write_bytes(b"\n".join(line for line, _ in lines) + b"\n")
    output = folder / "out.jsonl"
    result = cli("predict", tiny_pipeline_dir, source, output)
    assert result.returncode == 0, result.stderr
    good = [n for n, (line, reason) in enumerate(lines, 1) if line and reason is None]
    bad = [(n, reason) for n, (_, reason) in enumerate(lines, 1) if reason]
    records, rejects = read_jsonl(output), read_jsonl(folder / "out.rejects.jsonl")
    assert [r["line"] for r in records] == good
    assert [(r["line"], r["reason"]) for r in rejects] == [(n, r["reason"]) for (n, _), r in zip(bad, rejects)]
    assert all(reason in r["reason"] for (_, reason), r in zip(bad, rejects))
    # The reject names the record: its id where the line is a JSON object (NaN included), none where not.
    inputs = {n: line for n, (line, _) in enumerate(lines, 1)}
    for reject in rejects:
        assert ("id" in reject) == (b'"id"' in inputs[reject["line"]] and reject["line"] != 2)
    for record in records:
        source_line = json.loads(inputs[record["line"]])
        assert {k: v for k, v in record.items() if k not in ("line", "entities")} == source_line
        text = record.get("text", " ".join(record.get("tokens", [])))
        for entity in record["entities"]:
            assert text[entity["start_char"] : entity["end_char"]] == entity["text"]
    summary = result.stderr.strip().splitlines()[-1]
    n_lines = len([line for line, _ in lines if line])
    assert summary == f"{n_lines} read, {len(good)} written, {len(bad)} rejected (see {folder / 'out.rejects.jsonl'})"
    for line_no, reason in bad:
        assert any(line.startswith(f"{source}:{line_no}: ") and reason in line for line in result.stderr.splitlines())
    assert leftovers(folder) == []


TOO_LONG = "Token indices sequence length is longer than the specified maximum sequence length"


def test_a_long_document_gives_no_false_sequence_length_warning(tiny_pipeline_dir, work):
    """A long document with a token of 804 wordpieces (a run of dots) among its
    sentences: the windows keep the encoder within its maximum (the tiny one's
    256), so transformers' warning that the sequence "will result in indexing
    errors" would be untrue; predict's stderr is its summary alone."""
    text = " ".join(["Anna Berg lives in Paris ."] * 100 + ["." * 804] + ["Tom Reed works for Acme Corp ."] * 100)
    source = work / "long_document.jsonl"
    source.write_text(json.dumps({"id": "long", "text": text}) + "\n", encoding="utf8")
    output = work / "long_document_out.jsonl"
    result = cli("predict", tiny_pipeline_dir, source, output)
    assert result.returncode == 0, result.stderr
    assert TOO_LONG not in result.stderr
    assert result.stderr.strip().splitlines() == ["1 read, 1 written, 0 rejected"]
    [record] = read_jsonl(output)
    for entity in record["entities"]:
        assert text[entity["start_char"] : entity["end_char"]] == entity["text"]


@SLOW
def test_n_process_2_gives_the_entities_of_one_process(tiny_pipeline_dir, work):
    """Forked workers (spaCy's nlp.pipe n_process) find what one process finds;
    a stale rejects file of an earlier run is removed when the new run has none."""
    texts = [
        "Anna Berg lives in Paris .",
        "Globex opened an office in Lima .",
        "Tom Reed met Mia Cole .",
        "the weather was fine .",
        "Omar Haddad works for Acme Corp .",
    ] * 8
    source = work / "many.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf8")
    output = work / "many.jsonl"
    stale = work / "many.rejects.jsonl"
    stale.write_text('{"line": 9, "reason": "from an earlier run"}\n', encoding="utf8")
    result = cli("predict", tiny_pipeline_dir, source, output, "--n-process", 2, "--batch-size", 4)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"{len(texts)} read, {len(texts)} written, 0 rejected"
    nlp = spacy.load(tiny_pipeline_dir)
    expected = [doc_to_entities(doc) for doc in nlp.pipe(texts, batch_size=4)]
    records = read_jsonl(output)
    assert [r["line"] for r in records] == list(range(1, len(texts) + 1))
    assert [r["entities"] for r in records] == expected and any(expected)
    assert not stale.exists()


# The probe (tests/signal_probe.py): `python -m pos_ner` that reports its states on stderr,
# each on a line of its own after this prefix.
PROBE = [sys.executable, "-m", "signal_probe"]
PROBE_PREFIX = "pos-ner-probe:"
# A process that inherited SIGINT ignored, as a non-interactive shell starts `command &`
# (a CI script, a test runner started that way): Python then installs no KeyboardInterrupt.
SIGINT_IGNORED = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])",
]
# Seconds a stopped command may take to exit before it counts as hung.
STOP_TIMEOUT = 60
BIG_LINE = "Anna Berg lives in Paris and works for Globex .\n"
# A batch of 32 such lines is more than a pipe holds (64 KiB): spaCy's queue to a worker fills up.
LONG_LINE = " ".join(["Anna Berg lives in Paris and works for Globex ."] * 60) + "\n"


def signal_masks(pid: int) -> str:
    """Each thread's name and SigBlk/SigIgn/SigCgt masks from /proc (Linux; else empty)."""
    lines = []
    for task in sorted(Path(f"/proc/{pid}/task").glob("*")):
        try:
            status = (task / "status").read_text().splitlines()
        except OSError:  # the thread ended meanwhile
            continue
        fields = dict(line.split(":\t", 1) for line in status if ":\t" in line)
        lines.append(
            " ".join(f"{key}={fields.get(key, '?').strip()}" for key in ("Name", "SigBlk", "SigIgn", "SigCgt"))
        )
    return "\n".join(lines)


class Probed:
    """`pos-ner ARGS` under the probe, in the background; `wait_for` blocks on
    its stderr until it reports a state, `stop` signals it and waits for it."""

    def __init__(self, *args, env=None, launcher=()):
        environment = {key: value for key, value in os.environ.items() if key != "POS_NER_DEBUG"}
        tests = str(Path(__file__).resolve().parent)
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [tests, environment.get("PYTHONPATH")]))
        environment.update(env or {})
        command = [*launcher, *PROBE, *map(str, args)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment
        )
        self.lines: queue.Queue[Optional[str]] = queue.Queue()
        self.stderr: List[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stderr:
            self.lines.put(line.decode("utf8", "replace"))
        self.lines.put(None)

    def wait_for(self, state: str, timeout: float = TIMEOUT) -> None:
        """Block until the process reports `state` (fails if it exits first)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.process.kill()
                pytest.fail(f"no '{state}' within {timeout} s:\n{''.join(self.stderr)}")
            if line is None:
                self.process.wait()
                pytest.fail(f"exited ({self.process.returncode}) before '{state}':\n{''.join(self.stderr)}")
            self.stderr.append(line)
            if line.strip() == f"{PROBE_PREFIX} {state}":
                return

    def stop(self, signum: int) -> Tuple[Optional[int], str, float, str]:
        """Send `signum`; (exit status or None if it did not exit within
        STOP_TIMEOUT, its stderr without the probe's lines, seconds to exit,
        the signal masks it met)."""
        masks = signal_masks(self.process.pid)
        start = time.monotonic()
        self.process.send_signal(signum)
        try:
            returncode: Optional[int] = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            returncode = None
            self.process.kill()
            self.process.wait()
        seconds = time.monotonic() - start
        self.reader.join(timeout=10)
        while not self.lines.empty():
            line = self.lines.get()
            if line is not None:
                self.stderr.append(line)
        stderr = "".join(line for line in self.stderr if not line.startswith(PROBE_PREFIX))
        return returncode, stderr, seconds, masks


@pytest.fixture(scope="module")
def big_inputs(work):
    """Inputs no run finishes before it is stopped: short lines, and long ones."""
    short, long = work / "big.txt", work / "long.txt"
    short.write_text(BIG_LINE * 100_000, encoding="utf8")
    long.write_text(LONG_LINE * 3_000, encoding="utf8")
    return {"short": short, "long": long}


def stop_mid_run(model, source, folder, signum, state, n_process=1, launcher=()):
    """Run predict over `source` into `folder`/out.jsonl (which holds EARLIER),
    send `signum` once the run reports `state`; (exit status, stderr, seconds, masks)."""
    output = folder / "out.jsonl"
    output.write_bytes(EARLIER)
    env = {"PROBE_RECORD": state.split()[1]} if state.startswith("record ") else {}
    run = Probed("predict", model, source, output, "--n-process", n_process, env=env, launcher=launcher)
    try:
        run.wait_for(state)
        return run.stop(signum)
    finally:
        run.process.kill()


def stopped_cleanly(outcome, signum, folder, source) -> str:
    """Why the stopped run is not as it should be ('' if it is)."""
    returncode, stderr, seconds, masks = outcome
    expected = 143 if signum == signal.SIGTERM else 130
    if returncode is None:
        return f"still running {STOP_TIMEOUT} s after {signum.name}\n{stderr}\n{masks}"
    if returncode != expected:
        return f"exit status {returncode}, expected {expected} ({seconds:.1f} s)\n{stderr}\n{masks}"
    if "Traceback" in stderr:
        return f"a traceback\n{stderr}"
    lines = stderr.strip().splitlines()
    if signum == signal.SIGTERM and lines[-1:] != ["pos-ner predict: terminated"]:
        return f"no 'terminated' line\n{stderr}"
    if signum == signal.SIGINT and lines:
        return f"something on stderr\n{stderr}"
    if (folder / "out.jsonl").read_bytes() != EARLIER:
        return "the earlier output changed"
    left = sorted(p.name for p in folder.iterdir() if p != source)
    if left != ["out.jsonl"]:
        return f"left behind: {left}"
    return ""


@pytest.mark.parametrize(
    "signum,state,n_process,inherited",
    [
        (signal.SIGTERM, "record 100", 1, ""),
        # The failure this guards against: a run started with SIGINT ignored could not be interrupted.
        (signal.SIGINT, "record 100", 1, "SIGINT ignored"),
        pytest.param(signal.SIGINT, "record 100", 1, "", marks=SLOW),
        pytest.param(signal.SIGINT, "loading", 1, "", marks=SLOW),
        pytest.param(signal.SIGTERM, "loading", 1, "", marks=SLOW),
        pytest.param(signal.SIGINT, "loaded", 1, "", marks=SLOW),
        # The workers are stopped first: spaCy's cleanup would wait for a worker blocked writing
        # results, and the interpreter's exit for the texts queued to a worker that is gone (by
        # record 800 of long lines the parent has queued more than a pipe holds; exit hung).
        pytest.param(signal.SIGTERM, "record 800", 2, "", marks=SLOW),
        pytest.param(signal.SIGINT, "record 800", 2, "", marks=SLOW),
    ],
    ids=[
        "SIGTERM",
        "SIGINT-inherited-ignored",
        "SIGINT",
        "SIGINT-loading",
        "SIGTERM-loading",
        "SIGINT-first-batch",
        "SIGTERM-n_process-2",
        "SIGINT-n_process-2",
    ],
)
def test_signal_mid_run_leaves_no_temp_file_and_the_earlier_output(
    signum, state, n_process, inherited, tiny_pipeline_dir, work, big_inputs, request
):
    """Sent when the run reports `state` (model loading, the first batch, mid-stream),
    never after a guessed delay."""
    folder = work / request.node.callspec.id
    folder.mkdir()
    source = big_inputs["long" if n_process > 1 else "short"]
    launcher = SIGINT_IGNORED if inherited else ()
    outcome = stop_mid_run(tiny_pipeline_dir, source, folder, signum, state, n_process, launcher)
    assert not stopped_cleanly(outcome, signum, folder, source)


REPEATS = 20


@SLOW
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_run_repeatedly_stops_every_run(signum, tiny_pipeline_dir, work, big_inputs):
    """The mid-run signal REPEATS times, so that a rare lost signal or hang shows
    up (run it beside a CPU burner to see it under load)."""
    failures, seconds = [], []
    for attempt in range(REPEATS):
        folder = work / f"repeat_{signum.name}_{attempt}"
        folder.mkdir()
        outcome = stop_mid_run(tiny_pipeline_dir, big_inputs["short"], folder, signum, "record 100")
        seconds.append(outcome[2])
        reason = stopped_cleanly(outcome, signum, folder, big_inputs["short"])
        if reason:
            failures.append(f"run {attempt + 1}: {reason}")
    summary = f"{REPEATS - len(failures)}/{REPEATS} stopped cleanly; seconds to exit: max {max(seconds):.1f}"
    print(f"{signum.name}: {summary}, median {sorted(seconds)[REPEATS // 2]:.1f}")
    assert not failures, summary + "\n" + "\n\n".join(failures)


@pytest.mark.parametrize(
    "signum,where",
    [(signal.SIGINT, "set_name"), (signal.SIGTERM, "set_name"), (signal.SIGINT, "exec")],
    ids=["SIGINT-turned-into-an-import-error", "SIGTERM-turned-into-an-import-error", "SIGINT-in-exec-code"],
)
def test_a_signal_a_library_turns_into_an_error_still_stops_the_command(
    signum, where, tiny_pipeline_dir, text_input, work
):
    """A signal while the model loads can reach the command as another error
    (CPython 3.11 turns one raised in a class's creation into RuntimeError,
    transformers' lazy import that into ModuleNotFoundError: 'cannot load the
    pipeline', exit 1) or, from code run from a string, leave the interpreter
    to end by SIGINT after exit 130 (exit status -2). It stops as the signal asks."""
    output = work / f"turned_{where}_{signum.name}.jsonl"
    output.write_bytes(EARLIER)
    env = {"PROBE_SIGNAL_IN_LOAD": where, "PROBE_SIGNAL": signum.name[3:]}
    run = Probed("predict", tiny_pipeline_dir, text_input, output, env=env)
    try:
        run.process.wait(timeout=TIMEOUT)
    finally:
        run.process.kill()
    run.reader.join(timeout=10)
    stderr = "".join(line for line in iter(run.lines.get, None) if not line.startswith(PROBE_PREFIX))
    expected = 143 if signum == signal.SIGTERM else 130
    assert run.process.returncode == expected, stderr
    assert stderr == ("pos-ner predict: terminated\n" if signum == signal.SIGTERM else "")
    assert output.read_bytes() == EARLIER and leftovers(work) == []


@contextmanager
def read_only(folder: Path):
    """`folder` made unwritable: chmod for a normal user; root ignores modes,
    so for root the immutable attribute (chattr +i) where the file system has it."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
        pytest.skip("running as root without chattr +i: cannot make a folder read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_read_only_output_folder_is_one_line(tiny_pipeline_dir, text_input, work):
    folder = work / "read_only"
    folder.mkdir()
    output = folder / "out.jsonl"
    output.write_bytes(EARLIER)
    with read_only(folder):
        line = one_line_failure(cli("predict", tiny_pipeline_dir, text_input, output), code=1)
    assert line.startswith(f"{output}: cannot write: ")
    assert ("Permission denied" in line) or ("Operation not permitted" in line)
    assert output.read_bytes() == EARLIER and sorted(p.name for p in folder.iterdir()) == ["out.jsonl"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_full_disk_is_one_line_and_leaves_the_device_alone(tiny_pipeline_dir, work):
    source = work / "one_bad.txt"
    source.write_bytes(b"Anna Berg lives in Paris .\n\xff\n")
    before = os.stat("/dev/full")
    result = cli("predict", tiny_pipeline_dir, source, "/dev/full")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    # The record warning, then the failure; no summary.
    assert result.stderr.strip().splitlines() == [
        f"{source}:2: invalid UTF-8 (byte 0)",
        "/dev/full: cannot write: No space left on device",
    ]
    after = os.stat("/dev/full")
    # Written in place, never renamed over: still the same character device, and no rejects file in /dev.
    assert (after.st_ino, after.st_rdev, after.st_mode) == (before.st_ino, before.st_rdev, before.st_mode)
    assert not Path("/dev/full.rejects.jsonl").exists()
