"""pos_ner.serving and `pos-ner serve` (TestClient and one real uvicorn server) and `python -m benchmarks.load_test`.
Failures, slow clients and scheduling: test_serve_faults.py; the schema fuzzer: test_serve_fuzz.py."""

import json
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

from conftest import ROOT, serve_process

TEXTS = ["Anna Berg lives in Paris .", "Globex opened an office in Lima .", ""]


@pytest.fixture(scope="module")
def nlp(tiny_pipeline_dir):
    return spacy.load(tiny_pipeline_dir)


@pytest.fixture(scope="module")
def app(nlp):
    return create_app(
        nlp, model_name="tiny", max_texts=3, max_chars=40, max_body_bytes=3000, max_request_tokens=30, max_word_chars=38
    )


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as client:
        yield client


def errors_counted(app, kind):
    return app.state.registry.get_sample_value("ner_errors_total", {"kind": kind}) or 0


def test_health(client, nlp):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "model": "tiny",
        "version": nlp.meta["version"],
        "spacy_version": nlp.meta["spacy_version"],
        "pipeline": ["transformer", "tagger", "ner"],
    }


def test_health_names_the_model_from_its_meta(nlp):
    with TestClient(create_app(nlp)) as client:
        health = client.get("/health").json()
    assert health["model"] == f"{nlp.meta['lang']}_{nlp.meta['name']}" and health["version"] == nlp.meta["version"]


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
    # strict JSON: no NaN/Infinity (not JSON, though Python's json reads them), no repeated keys
    (b'{"text": NaN}', 400, "body", "invalid_json"),
    (b'{"texts": ["a", Infinity]}', 400, "body", "invalid_json"),
    (b'{"texts": [-Infinity]}', 400, "body", "invalid_json"),
    (b'{"text": "a", "text": "b"}', 400, "body", "invalid_json"),
    # past max_request_tokens (30): by the word count, or by the tokenizer's count
    (json.dumps({"texts": ["a b c d e f g h i j k"] * 3}).encode(), 413, "texts", "too_many_tokens"),
    (json.dumps({"text": "Oslo" + "!" * 30}).encode(), 413, "text", "too_many_tokens"),
    # past max_word_chars (38): spaCy's tokenizer is slow on long runs without spaces
    (json.dumps({"texts": ["ok", "x" * 39]}).encode(), 422, "texts[1]", "word_too_long"),
]


@pytest.mark.parametrize("body,status,field,kind", BAD_REQUESTS)
def test_bad_requests(client, app, body, status, field, kind):
    before = errors_counted(app, kind)
    response = client.post("/ner", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.json()["error"] == kind and response.json()["field"] == field
    assert field in response.json()["message"] or field == "body"
    assert errors_counted(app, kind) == before + 1
    assert response.json()["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "json"]
)
def test_non_json_content_types_get_415(client, app, content_type):
    before = errors_counted(app, "unsupported_media_type")
    response = client.post("/ner", content=b'{"text": "Oslo"}', headers={"content-type": content_type})
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type" and response.json()["field"] == "content-type"
    assert errors_counted(app, "unsupported_media_type") == before + 1


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON", "application/x+json", None]
)
def test_json_content_types_are_accepted(client, content_type):
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/ner", content=b'{"text": "Oslo"}', headers=headers)
    assert response.status_code == 200, response.text


def test_openapi_schema_describes_the_api(client):
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/ner"]["post"]
    text_request, texts_request = operation["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert text_request["required"] == ["text"] and text_request["additionalProperties"] is False
    assert text_request["properties"]["text"] == {"type": "string", "maxLength": 40, "title": "Text"}
    texts = texts_request["properties"]["texts"]
    assert (texts["minItems"], texts["maxItems"], texts["items"]) == (1, 3, {"type": "string", "maxLength": 40})
    assert {"200", "400", "408", "413", "415", "422", "500"} <= set(operation["responses"])
    entity = spec["components"]["schemas"]["Entity"]
    assert set(entity["required"]) == {"start_char", "end_char", "text", "label", "confidence"}
    assert set(spec["components"]["schemas"]["ErrorBody"]["properties"]) == {"error", "field", "message", "request_id"}


def test_chunked_body_over_the_limit(client, app):
    before = errors_counted(app, "body_too_large")
    response = client.post("/ner", content=(b"x" * 1000 for _ in range(5)))
    assert response.status_code == 413 and response.json()["field"] == "body"
    assert errors_counted(app, "body_too_large") == before + 1


def test_max_chars_within_max_length(nlp):
    with pytest.raises(ValueError, match="max_length"):
        create_app(nlp, max_chars=nlp.max_length + 1)


@pytest.fixture(scope="module")
def server_log(tmp_path_factory):
    return tmp_path_factory.mktemp("server") / "server.log"


@pytest.fixture(scope="module")
def server(tiny_pipeline_dir, server_log):
    """`pos-ner serve` in a subprocess on a free loopback port, some limits set
    through the environment; its base URL."""
    env = {"NER_MAX_TEXTS": "2", "NER_MAX_REQUEST_TOKENS": "40", "NER_BODY_TIMEOUT": "1", "NER_MAX_CONNECTIONS": "16"}
    with serve_process(tiny_pipeline_dir, server_log, env) as url:
        yield url


def test_real_server(server, nlp):
    with httpx.Client(base_url=server, timeout=30, trust_env=False) as client:
        assert client.get("/health").json()["pipeline"] == ["transformer", "tagger", "ner"]
        response = client.post("/ner", json={"texts": TEXTS[:2]})
        assert response.status_code == 200
        assert response.json() == {"results": [{"entities": doc_to_entities(doc)} for doc in nlp.pipe(TEXTS[:2])]}
        too_many = client.post("/ner", json={"texts": TEXTS})  # NER_MAX_TEXTS=2 from the environment
        assert too_many.status_code == 422 and too_many.json()["field"] == "texts"


def test_real_server_health_has_no_path(server, tiny_pipeline_dir, nlp):
    health = httpx.get(f"{server}/health", timeout=30, trust_env=False)
    assert health.json()["model"] == f"{nlp.meta['lang']}_{nlp.meta['name']}"
    assert str(tiny_pipeline_dir) not in health.text and tiny_pipeline_dir.parent.name not in health.text
    assert "/" not in health.text


def test_real_server_limits_from_the_environment(server, server_log):
    too_long = httpx.post(f"{server}/ner", json={"text": "word " * 41}, timeout=30, trust_env=False)
    assert too_long.status_code == 413 and too_long.json()["error"] == "too_many_tokens"  # NER_MAX_REQUEST_TOKENS
    host, port = server.removeprefix("http://").split(":")
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as sock:  # NER_BODY_TIMEOUT=1
        sock.sendall(b'POST /ner HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n{"text": "Oslo')
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 ") and 1 <= time.monotonic() - start < 5
    # the service's own log lines reach the server log, next to uvicorn's
    assert "limits: 40 tokens and 2 texts per request, body within 1 s, 16 connections" in server_log.read_text()


def test_load_test(server, tmp_path):
    output = tmp_path / "load.json"
    command = [
        sys.executable,
        "-m",
        "benchmarks.load_test",
        "--url",
        server,
        "--duration",
        "2",
        "--concurrency",
        "2",
        "--output",
        str(output),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
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
        "-m",
        "benchmarks.load_test",
        "--url",
        url,
        "--duration",
        "1",
        "--output",
        str(tmp_path / "x.json"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2 and "refusing" in result.stderr
    assert not (tmp_path / "x.json").exists()
