"""The HTTP service under failures, slow clients, many connections and big
requests: a real uvicorn server in a thread on a free loopback port, with a
test-only component that raises (texts with BOOM) or is slow (texts with SLOW)."""

import http.client
import json
import logging
import socket
import threading
import time
from contextlib import ExitStack, contextmanager
from typing import Iterator, List, Tuple

import httpx
import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc

from pos_ner.serving import Batch, RoundRobinWorker, batches, create_app, make_server

MAX_CONNECTIONS = 8
BODY_TIMEOUT = 1.0
SLOW_SECONDS = 0.3
slow_started = threading.Event()
processed: List[str] = []  # the texts the test component saw, in order


@Language.component("serve_test_faults")
def serve_test_faults(doc: Doc) -> Doc:
    """Raises on BOOM, sleeps on SLOW: a pipeline failure and a long request on demand."""
    processed.append(doc.text)
    if "BOOM" in doc.text:
        raise RuntimeError("BOOM: the test component failed on purpose")
    if "SLOW" in doc.text:
        slow_started.set()
        time.sleep(SLOW_SECONDS)
    return doc


@contextmanager
def running_server(app, max_connections: int = MAX_CONNECTIONS) -> Iterator[Tuple[str, object]]:
    """(base URL, uvicorn.Server) of `app` served by `make_server` in a thread
    on a socket bound before the server starts, so no other process can take the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = make_server(app, max_connections=max_connections, log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", server
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture(scope="module")
def nlp(tiny_pipeline_dir):
    nlp = spacy.load(tiny_pipeline_dir)
    nlp.add_pipe("serve_test_faults")
    return nlp


@pytest.fixture(scope="module")
def app(nlp):
    return create_app(
        nlp,
        max_texts=8,
        max_chars=200,
        max_request_tokens=60,
        batch_tokens=8,
        max_word_chars=100,
        body_timeout=BODY_TIMEOUT,
    )


@pytest.fixture(scope="module")
def served(app):
    with running_server(app) as served:
        yield served


@pytest.fixture
def url(served):
    """The base URL, once the connections of earlier tests are gone (they count against the limit)."""
    url, server = served
    deadline = time.monotonic() + 10
    while server.server_state.connections:
        assert time.monotonic() < deadline, "earlier tests' connections stayed open"
        time.sleep(0.02)
    return url


def counted(app, name, **labels):
    return app.state.registry.get_sample_value(name, labels) or 0


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def stall(url: str, declared: int = 100) -> socket.socket:
    """A client that sends the headers and half of a `declared`-byte body, then nothing."""
    sock = connect(url)
    head = f"POST /ner HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    sock.sendall(head.encode() + b'{"text": "Anna' + b" " * (declared // 2))
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def post(conn: http.client.HTTPConnection, body: dict) -> http.client.HTTPResponse:
    conn.request("POST", "/ner", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    return response


def test_internal_error_answers_json_500_and_keeps_the_connection(url, app, caplog):
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    ok = post(conn, {"text": "Anna Berg lives in Paris ."})
    assert ok.status == 200
    sock = conn.sock
    errors, failed = (
        counted(app, "ner_errors_total", kind="internal"),
        counted(app, "ner_requests_total", endpoint="/ner", status="500"),
    )
    with caplog.at_level(logging.ERROR, logger="pos_ner.serving"):
        failure = post(conn, {"texts": ["Anna Berg lives in Paris .", "BOOM goes Oslo ."]})
    assert failure.status == 500 and failure.getheader("content-type") == "application/json"
    body = json.loads(failure.body)
    request_id = failure.getheader("x-request-id")
    assert body == {
        "error": "internal",
        "field": None,
        "message": body["message"],
        "request_id": request_id,
    }
    assert "Traceback" not in failure.body.decode() and "BOOM" not in failure.body.decode()
    assert (failure.getheader("connection") or "").lower() != "close"
    # the traceback is in the log, under the request id
    logged = [record for record in caplog.records if request_id in record.getMessage()]
    assert logged and logged[0].exc_info and "BOOM" in str(logged[0].exc_info[1])
    assert counted(app, "ner_errors_total", kind="internal") == errors + 1
    assert counted(app, "ner_requests_total", endpoint="/ner", status="500") == failed + 1
    # the same connection still works: http.client would have opened a new socket otherwise
    again = post(conn, {"text": "Tom Reed works for Globex ."})
    assert again.status == 200 and json.loads(again.body)["results"][0]["entities"]
    assert conn.sock is sock
    conn.close()


def test_every_response_has_a_request_id(url):
    with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
        responses = [
            client.get("/health"),
            client.get("/metrics"),
            client.get("/nowhere"),
            client.delete("/ner"),
            client.post("/ner", json={"text": "Lena lives in Lima ."}),
            client.post("/ner", json={"text": 1}),
            client.post("/ner", content=b"Lena", headers={"content-type": "text/plain"}),
            client.post("/ner", json={"text": "BOOM"}),
        ]
        assert [r.status_code for r in responses] == [200, 200, 404, 405, 200, 422, 415, 500]
        ids = [r.headers["x-request-id"] for r in responses]
        assert len(set(ids)) == len(ids) and all(len(i) == 32 for i in ids)
        for response in responses[2:4] + responses[5:]:  # errors carry it in the body as well
            assert response.json()["request_id"] == response.headers["x-request-id"]
        assert responses[2].json()["error"] == "not_found" and responses[3].headers["allow"] == "POST"
        # a caller's own id is kept for tracing, unless it is not a plain token
        assert client.get("/health", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"
        replaced = client.get("/health", headers={"x-request-id": "a b\tc"}).headers["x-request-id"]
        assert replaced != "a b\tc" and len(replaced) == 32


def test_a_stalled_body_gets_408_and_the_connection_is_closed(url, app):
    before = counted(app, "ner_errors_total", kind="body_timeout")
    start = time.monotonic()
    with stall(url) as sock:
        data = read_all(sock)  # returns once the server closes the connection
    elapsed = time.monotonic() - start
    assert BODY_TIMEOUT <= elapsed < BODY_TIMEOUT + 3
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ") and b"connection: close" in head.lower()
    assert json.loads(body)["error"] == "body_timeout"
    assert counted(app, "ner_errors_total", kind="body_timeout") == before + 1


def test_a_trickling_body_cannot_extend_the_deadline(url):
    start = time.monotonic()
    with stall(url, declared=1000) as sock:
        sock.settimeout(0.2)
        data = b""
        while time.monotonic() - start < BODY_TIMEOUT + 3:
            try:
                sock.sendall(b" ")  # a byte every 0.2 s keeps the connection busy, not the request alive
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:  # reset once the server has closed it
                break
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - start < BODY_TIMEOUT + 3


def test_stalled_clients_do_not_hold_up_others(url):
    with ExitStack() as stack:
        stalled = [stack.enter_context(stall(url)) for _ in range(MAX_CONNECTIONS - 3)]
        start = time.monotonic()
        with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
            answers = [client.post("/ner", json={"text": "Mia Cole lives in Cairo ."}) for _ in range(3)]
        assert [r.status_code for r in answers] == [200] * 3
        assert time.monotonic() - start < BODY_TIMEOUT, "normal requests waited for the stalled ones"
        assert all(read_all(sock).startswith(b"HTTP/1.1 408 ") for sock in stalled)


def test_connections_past_the_limit_get_503(url, served):
    _, server = served
    with ExitStack() as stack:
        idle = [stack.enter_context(connect(url)) for _ in range(MAX_CONNECTIONS - 1)]
        deadline = time.monotonic() + 5
        while len(server.server_state.connections) < len(idle):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
            assert client.get("/health").status_code == 200  # the limit's last connection is served
            extra = stack.enter_context(connect(url))
            extra.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
            refused = read_all(extra)
            assert refused.startswith(b"HTTP/1.1 503 ") and b"connection: close" in refused.lower()
    time.sleep(0.2)  # the server notices the closed connections
    with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
        assert client.get("/health").status_code == 200


def test_a_small_request_is_not_queued_behind_a_big_one(url):
    """With one lock per request the small one would wait for all of the big
    one's batches (4 × 2 slow texts); taking turns it waits for at most one."""
    slow_started.clear()
    processed.clear()
    big_texts = ["SLOW Anna Berg ."] * 8  # 4 tokens each: batches of 2 texts at batch_tokens=8
    finished = {}

    def send(name: str, body: dict) -> None:
        with httpx.Client(base_url=url, timeout=60, trust_env=False) as client:
            response = client.post("/ner", json=body)
        assert response.status_code == 200, response.text
        finished[name] = time.monotonic()

    big = threading.Thread(target=send, args=("big", {"texts": big_texts}))
    big.start()
    assert slow_started.wait(10)
    start = time.monotonic()
    send("small", {"text": "Tom Reed works for Globex ."})
    big.join(60)
    # the small one went right after the big one's first batch (and in one step: its count and its batch)
    assert processed == big_texts[:2] + ["Tom Reed works for Globex ."] + big_texts[2:]
    assert finished["small"] < finished["big"]  # a lock would have let the big request finish first
    batch = 2 * SLOW_SECONDS
    assert finished["small"] - start < 2.5 * batch  # ≤ one batch of the big request, plus slack on a busy CPU
    assert finished["big"] - start > 2.5 * batch  # the big one really had batches left


def test_the_token_limit(url, app, nlp):
    one_word = "Paris" + "!" * 70
    assert len(one_word.split()) == 1 and len(nlp.make_doc(one_word)) > 60
    before = counted(app, "ner_errors_total", kind="too_many_tokens")
    with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
        few_words = client.post("/ner", json={"text": one_word})
        many_words = client.post("/ner", json={"texts": ["Anna Berg lives in Paris ."] * 7 + ["x " * 20]})
        at_the_limit = client.post("/ner", json={"texts": ["Anna Berg lives in Paris ."] * 7 + ["x " * 18]})
    for response in (few_words, many_words):  # counted by the tokenizer; or refused by the word count
        assert response.status_code == 413, response.text
        assert response.json()["error"] == "too_many_tokens" and "60" in response.json()["message"]
    assert few_words.json()["field"] == "text" and many_words.json()["field"] == "texts"
    assert at_the_limit.status_code == 200 and len(at_the_limit.json()["results"]) == 8
    assert counted(app, "ner_errors_total", kind="too_many_tokens") == before + 2


def test_batches_keep_the_input_order(url, nlp):
    texts = ["Anna Berg lives in Paris .", "", "Globex opened an office in Lima .", "Tom Reed met Lena ."]
    with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
        results = client.post("/ner", json={"texts": texts}).json()["results"]
    assert len(results) == len(texts) and results[1] == {"entities": []}
    for text, result in zip(texts, results):
        for entity in result["entities"]:
            assert text[entity["start_char"] : entity["end_char"]] == entity["text"]
    assert any(result["entities"] for result in results)


def test_requests_leave_no_strings_in_the_vocab(url, nlp):
    """memory_zone: a request's unseen words are freed with it, and the answer was made before they were."""
    words = [f"Zorbl{i}quux" for i in range(20)]
    size = len(nlp.vocab.strings)
    with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
        response = client.post("/ner", json={"texts": [" ".join(words[:10]), " ".join(words[10:])]})
    assert response.status_code == 200
    assert not any(word in nlp.vocab.strings for word in words)
    assert len(nlp.vocab.strings) == size


def test_batches():
    assert list(batches([3, 3, 3, 1, 9, 2], max_tokens=6, max_texts=5)) == [[0, 1], [2, 3], [4], [5]]
    assert list(batches([1] * 5, max_tokens=100, max_texts=2)) == [[0, 1], [2, 3], [4]]
    assert list(batches([], max_tokens=1, max_texts=1)) == []


def test_the_worker_takes_turns():
    """A job submitted while a long one runs goes before the long one's next step."""
    worker = RoundRobinWorker()
    log: List[str] = []
    started, proceed = threading.Event(), threading.Event()

    def long_job():
        for i in range(4):
            log.append(f"long{i}")
            if i == 0:
                started.set()
                assert proceed.wait(10)
            yield
        return "long"

    def short_job():
        log.append("short")
        return "short"
        yield  # a generator: one step

    def failing_job():
        raise ValueError("broken")
        yield

    try:
        long_future = worker.submit(long_job())
        assert started.wait(10)
        failing, short = worker.submit(failing_job()), worker.submit(short_job())
        proceed.set()
        assert short.result(10) == "short" and long_future.result(10) == "long"
        assert log == ["long0", "short", "long1", "long2", "long3"]
        with pytest.raises(ValueError, match="broken"):
            failing.result(10)
    finally:
        worker.close()
    # closed, it fails queued jobs instead of leaving them hanging, and a new job starts it again
    assert worker.submit(short_job()).result(10) == "short"
    worker.close()


def test_the_worker_runs_waiting_batches_together():
    """Batches that jobs yield while a pipeline call runs share the next call,
    within the token and text limits; a failing text fails only its own job."""
    calls: List[List[str]] = []
    started, proceed = threading.Event(), threading.Event()

    def run_batch(texts: List[str]) -> List[str]:
        calls.append(list(texts))
        if texts == ["first"]:
            started.set()
            assert proceed.wait(10)
        if any("BOOM" in text for text in texts):
            raise RuntimeError("BOOM")
        return [text.upper() for text in texts]

    def job(*batches: List[str]):
        results: List[str] = []
        for texts in batches:
            results.extend((yield Batch(texts, tokens=len(texts))))
        return results

    worker = RoundRobinWorker(run_batch, max_tokens=4, max_texts=3)
    try:
        first = worker.submit(job(["first"]))
        assert started.wait(10)
        # queued while "first" runs: they share calls, up to 3 texts and 4 tokens a call
        a, b = worker.submit(job(["a1"], ["a2"])), worker.submit(job(["b1", "b2"]))
        boom, c = worker.submit(job(["BOOM"])), worker.submit(job(["c1"]))
        proceed.set()
        assert first.result(10) == ["FIRST"]
        assert a.result(10) == ["A1", "A2"] and b.result(10) == ["B1", "B2"] and c.result(10) == ["C1"]
        with pytest.raises(RuntimeError, match="BOOM"):
            boom.result(10)
    finally:
        worker.close()
    # a1 and b1+b2 fill the first shared call (3 texts); BOOM and c1, which waited, go first in the next,
    # with a's second batch behind them; that call fails and is rerun one batch at a time
    assert calls == [["first"], ["a1", "b1", "b2"], ["BOOM", "c1", "a2"], ["BOOM"], ["c1"], ["a2"]]
