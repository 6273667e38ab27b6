"""pos_ner.serving and `pos-ner serve` (TestClient and one real uvicorn server) and benchmarks/load_test.py."""

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
import spacy
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from pos_ner.io.records import doc_to_entities
from pos_ner.serving import create_app

from conftest import ROOT

TEXTS = ["Anna Berg lives in Paris .", "Globex opened an office in Lima .", ""]


@pytest.fixture(scope="module")
def nlp(tiny_pipeline_dir):
    return spacy.load(tiny_pipeline_dir)


@pytest.fixture(scope="module")
def app(nlp):
    return create_app(nlp, model_name="tiny", max_texts=3, max_chars=40, max_body_bytes=3000)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as client:
        yield client


def errors_counted(app, kind):
    return app.state.registry.get_sample_value("ner_errors_total", {"kind": kind}) or 0


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model": "tiny", "pipeline": ["transformer", "tagger", "ner"]}


def test_ner_text_and_texts(client, nlp):
    single = client.post("/ner", json={"text": TEXTS[0]})
    assert single.status_code == 200
    assert single.json() == {"results": [{"entities": doc_to_entities(nlp(TEXTS[0]))}]}
    assert single.json()["results"][0]["entities"], "the toy model should find entities"
    many = client.post("/ner", json={"texts": TEXTS})
    assert many.status_code == 200
    assert many.json() == {"results": [{"entities": doc_to_entities(doc)} for doc in nlp.pipe(TEXTS)]}


def test_metrics(client, app):
    client.post("/ner", json={"texts": TEXTS[:2]})
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    assert samples[("ner_requests_total", (("endpoint", "/ner"), ("status", "200")))] >= 1
    assert samples[("ner_request_duration_seconds_count", (("endpoint", "/ner"),))] >= 1
    assert samples[("ner_texts_total", ())] >= 2
    assert samples[("ner_words_total", ())] >= 14


BAD_REQUESTS = [
    # (body, status, field, error kind)
    (b"{not json", 400, "body", "invalid_json"),
    (b"[" * 2000, 400, "body", "invalid_json"),
    (b'{"text": "caf\xe9"}', 400, "body", "invalid_utf8"),
    (b"[1, 2]", 422, "body", "invalid_type"),
    (b"{}", 422, "text", "missing_field"),
    (b'{"text": "a", "texts": ["b"]}', 422, "text", "missing_field"),
    (b'{"txt": "a"}', 422, "txt", "unknown_field"),
    (b'{"text": 1}', 422, "text", "invalid_type"),
    (b'{"text": null}', 422, "text", "invalid_type"),
    (b'{"texts": "a"}', 422, "texts", "invalid_type"),
    (b'{"texts": []}', 422, "texts", "empty_texts"),
    (b'{"texts": ["a", ["b"]]}', 422, "texts[1]", "invalid_type"),
    (b'{"texts": ["a", "b", "c", "d"]}', 422, "texts", "too_many_texts"),
    (json.dumps({"text": "x" * 41}).encode(), 422, "text", "text_too_long"),
    (json.dumps({"texts": ["ok", "x" * 41]}).encode(), 422, "texts[1]", "text_too_long"),
    (b'{"text": "\\udc00 Oslo"}', 422, "text", "invalid_text"),
    (json.dumps({"text": " " * 3000}).encode(), 413, "body", "body_too_large"),
]


@pytest.mark.parametrize("body,status,field,kind", BAD_REQUESTS)
def test_bad_requests(client, app, body, status, field, kind):
    before = errors_counted(app, kind)
    response = client.post("/ner", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.json()["error"] == kind and response.json()["field"] == field
    assert field in response.json()["message"] or field == "body"
    assert errors_counted(app, kind) == before + 1


def test_chunked_body_over_the_limit(client, app):
    before = errors_counted(app, "body_too_large")
    response = client.post("/ner", content=(b"x" * 1000 for _ in range(5)))
    assert response.status_code == 413 and response.json()["field"] == "body"
    assert errors_counted(app, "body_too_large") == before + 1


def test_max_chars_within_max_length(nlp):
    with pytest.raises(ValueError, match="max_length"):
        create_app(nlp, max_chars=nlp.max_length + 1)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_pipeline_dir, tmp_path_factory):
    """`pos-ner serve` in a subprocess on a free loopback port; its base URL."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "NER_PORT": str(port), "NER_MAX_TEXTS": "2"}
    command = [sys.executable, "-m", "pos_ner", "serve", str(tiny_pipeline_dir)]
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the server did not start in 120 s"
            try:
                httpx.get(f"{url}/health", timeout=1, trust_env=False)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def test_real_server(server, nlp):
    with httpx.Client(base_url=server, timeout=30, trust_env=False) as client:
        assert client.get("/health").json()["pipeline"] == ["transformer", "tagger", "ner"]
        response = client.post("/ner", json={"texts": TEXTS[:2]})
        assert response.status_code == 200
        assert response.json() == {"results": [{"entities": doc_to_entities(doc)} for doc in nlp.pipe(TEXTS[:2])]}
        too_many = client.post("/ner", json={"texts": TEXTS})  # NER_MAX_TEXTS=2 from the environment
        assert too_many.status_code == 422 and too_many.json()["field"] == "texts"


def test_load_test(server, tmp_path):
    output = tmp_path / "load.json"
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "load_test.py"),
        "--url",
        server,
        "--duration",
        "2",
        "--concurrency",
        "2",
        "--output",
        str(output),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert "latency p95" in completed.stdout
    result = json.loads(output.read_text())
    assert result["errors"] == 0 and result["requests"] > 0
    assert result["requests_per_second"] > 0 and result["texts_per_second"] > 0
    assert set(result["latency_ms"]) == {"p50", "p95", "p99"}
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p95"] <= result["latency_ms"]["p99"]


@pytest.mark.parametrize(
    "url", ["http://example.com:8000", "http://10.0.0.1", "ftp://127.0.0.1", "http://127.0.0.1.nip.io"]
)
def test_load_test_refuses_other_hosts(url, tmp_path):
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "load_test.py"),
        "--url",
        url,
        "--duration",
        "1",
        "--output",
        str(tmp_path / "x.json"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "refusing" in result.stderr
    assert not (tmp_path / "x.json").exists()
