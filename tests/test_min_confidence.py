"""`--min-confidence` (and the service's "min_confidence" request field) in
`pos-ner predict`, `annotate` and `serve`: every entity below its label's
threshold leaves "entities" for "low_confidence", none above it does, and the
two together are the entities without a threshold (nothing is lost); a lower
threshold than the model's own configured one restores what the model's
config took out; without any threshold the outputs have no such field; bad
values are usage errors (exit 2) or 422s that name the option or field; two
requests with their own thresholds that share one pipeline call get their own
splits. The tiny model's confidences are arbitrary, so every threshold here is
chosen from the confidences it gives, such that both sides are non-empty."""

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import spacy
from spacy.tokens import Doc, Span
from typer.testing import CliRunner

from pos_ner.cli import app
from pos_ner.io.records import doc_to_entities, low_confidence_entities
from pos_ner.pipeline_component import install_extensions
from pos_ner.thresholds import LOW_CONFIDENCE_KEY, Thresholds

from conftest import serve_process

TEXTS = [
    "Anna Berg lives in Paris .",
    "Tom Reed met Mia Cole .",
    "Globex opened an office in Lima .",
    "the weather was fine .",
    "Omar Haddad works for Acme Corp .",
    "Lena works for United Bank .",
    "",
]
BAD_VALUES = ["abc", "1.5", "-0.1", "nan", "PER=", "=0.5", "PER=2", "PER=x"]
TIMEOUT = 240


# ---------------------------------------------------------------- helpers


def split_point(confidences: List[float]) -> float:
    """A threshold with confidences on both sides: between the middle two distinct ones."""
    values = sorted(set(confidences))
    assert len(values) >= 2, f"the tiny model gave too few distinct confidences: {values}"
    k = len(values) // 2
    return (values[k - 1] + values[k]) / 2


def confidences_of(entity_lists: List[List[Dict]]) -> List[float]:
    return [entity["confidence"] for entities in entity_lists for entity in entities]


def key(entity: Dict):
    return entity["start_char"], entity["end_char"], entity["label"]


def assert_split(entities: List[Dict], low: List[Dict], everything: List[Dict], thresholds: Thresholds) -> None:
    """`entities` and `low` are `everything`, split by `thresholds`: every
    entity below its label's threshold in `low`, every other one in `entities`,
    each list in text order."""
    for entity in entities:
        assert entity["confidence"] >= thresholds.of(entity["label"]), entity
    for entity in low:
        assert entity["confidence"] < thresholds.of(entity["label"]), entity
    assert sorted(entities + low, key=key) == everything
    assert entities == sorted(entities, key=key) and low == sorted(low, key=key)


def read_jsonl(path: Path) -> List[Dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines()]


def run(*args: object, stdin: Optional[str] = None):
    result = CliRunner().invoke(app, [str(arg) for arg in args], input=stdin)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def cli(*args: object):
    """`python -m pos_ner ARGS` (no POS_NER_DEBUG), its output captured."""
    environment = {name: value for name, value in os.environ.items() if name not in ("POS_NER_DEBUG", "RAY_ADDRESS")}
    command = [sys.executable, "-m", "pos_ner", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=environment)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def nlp(tiny_pipeline_dir):
    return spacy.load(tiny_pipeline_dir)


@pytest.fixture(scope="module")
def baseline(nlp) -> List[List[Dict]]:
    """The entities of TEXTS without any threshold."""
    return [doc_to_entities(doc) for doc in nlp.pipe(TEXTS)]


@pytest.fixture(scope="module")
def threshold(baseline) -> float:
    return split_point(confidences_of(baseline))


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("min_confidence")
    (folder / "in.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf8")
    return folder


@pytest.fixture(scope="module")
def strict_model(tiny_pipeline_dir, tmp_path_factory) -> Path:
    """The tiny pipeline with `components.ner.min_confidence = 0.99` in its config."""
    nlp = spacy.load(tiny_pipeline_dir, config={"components": {"ner": {"min_confidence": 0.99}}})
    assert nlp.get_pipe("ner").thresholds == Thresholds(0.99)
    path = tmp_path_factory.mktemp("strict_model") / "model"
    nlp.to_disk(path)
    return path


def test_the_tiny_model_finds_entities_on_both_sides(baseline, threshold):
    confidences = confidences_of(baseline)
    assert any(c < threshold for c in confidences) and any(c >= threshold for c in confidences)


# ---------------------------------------------------------------- records


def test_low_confidence_entities():
    install_extensions()
    doc = Doc(spacy.blank("en").vocab, words=["Anna", "Berg", "lives", "in", "Oslo"])
    doc.ents = [Span(doc, 0, 2, "PER"), Span(doc, 4, 5, "LOC")]
    doc.ents[0]._.confidence, doc.ents[1]._.confidence = 0.9, 0.2
    assert low_confidence_entities(doc) is None  # no threshold applied: no group
    doc.spans[LOW_CONFIDENCE_KEY] = [doc.ents[1]]
    doc.ents = [doc.ents[0]]
    assert low_confidence_entities(doc) == [
        {"start_char": 19, "end_char": 23, "text": "Oslo", "label": "LOC", "confidence": 0.2}
    ]
    assert low_confidence_entities(doc, with_tokens=True) == [
        {"start_char": 19, "end_char": 23, "text": "Oslo", "label": "LOC", "confidence": 0.2, "start": 4, "end": 5}
    ]
    doc.spans[LOW_CONFIDENCE_KEY] = []
    assert low_confidence_entities(doc) == []


# ---------------------------------------------------------------- predict


def test_predict_splits_at_the_threshold(tiny_pipeline_dir, work, baseline, threshold):
    output = work / "split.jsonl"
    result = run("predict", tiny_pipeline_dir, work / "in.txt", output, "--min-confidence", threshold)
    assert result.exit_code == 0, result.output
    records = read_jsonl(output)
    assert [r["line"] for r in records] == list(range(1, len(TEXTS) + 1))
    for record, everything in zip(records, baseline):
        assert list(record) == ["line", "text", "entities", "low_confidence"]
        assert_split(record["entities"], record["low_confidence"], everything, Thresholds(threshold))
    assert any(r["entities"] for r in records) and any(r["low_confidence"] for r in records)


def test_predict_without_threshold_has_no_field(tiny_pipeline_dir, work, baseline):
    output = work / "plain.jsonl"
    assert run("predict", tiny_pipeline_dir, work / "in.txt", output).exit_code == 0
    records = read_jsonl(output)
    assert all(list(r) == ["line", "text", "entities"] for r in records)
    assert [r["entities"] for r in records] == baseline


def test_predict_per_label_thresholds(tiny_pipeline_dir, work, baseline):
    by_label = Counter(e["label"] for entities in baseline for e in entities)
    label = max(by_label, key=lambda name: len({e["confidence"] for es in baseline for e in es if e["label"] == name}))
    label_threshold = split_point([e["confidence"] for es in baseline for e in es if e["label"] == label])
    # only LABEL has a threshold: the other labels' entities all stay
    output = work / "per_label.jsonl"
    result = run(
        "predict", tiny_pipeline_dir, work / "in.txt", output, "--min-confidence", f"{label}={label_threshold}"
    )
    assert result.exit_code == 0, result.output
    records = read_jsonl(output)
    thresholds = Thresholds(0.0, ((label, label_threshold),))
    for record, everything in zip(records, baseline):
        assert_split(record["entities"], record["low_confidence"], everything, thresholds)
        assert all(e["label"] == label for e in record["low_confidence"])
    assert any(r["low_confidence"] for r in records)
    assert any(e["label"] == label for r in records for e in r["entities"])
    # a default for every other label ("NUMBER") beside LABEL's own, which here keeps all of LABEL
    result = run(
        "predict", tiny_pipeline_dir, work / "in.txt", output, "--min-confidence", 1, "--min-confidence", f"{label}=0"
    )
    assert result.exit_code == 0, result.output
    for record, everything in zip(read_jsonl(output), baseline):
        assert record["entities"] == [e for e in everything if e["label"] == label]
        assert record["low_confidence"] == [e for e in everything if e["label"] != label]


def test_predict_tokens_input_gives_token_offsets_for_both(tiny_pipeline_dir, work, nlp, threshold):
    tokens = [text.split() for text in TEXTS if text]
    source = work / "tokens.jsonl"
    source.write_text("".join(json.dumps({"tokens": t}) + "\n" for t in tokens), encoding="utf8")
    output = work / "tokens_out.jsonl"
    assert run("predict", tiny_pipeline_dir, source, output, "--min-confidence", threshold).exit_code == 0
    everything = [doc_to_entities(doc, with_tokens=True) for doc in nlp.pipe(Doc(nlp.vocab, words=t) for t in tokens)]
    for record, expected in zip(read_jsonl(output), everything):
        assert all({"start", "end"} <= set(e) for e in record["entities"] + record["low_confidence"])
        assert_split(record["entities"], record["low_confidence"], expected, Thresholds(threshold))


def test_an_input_field_of_that_name_is_replaced_only_when_thresholds_apply(tiny_pipeline_dir, work):
    source = work / "own_field.jsonl"
    source.write_text(json.dumps({"text": TEXTS[0], "low_confidence": "mine"}) + "\n", encoding="utf8")
    output = work / "own_field_out.jsonl"
    assert run("predict", tiny_pipeline_dir, source, output).exit_code == 0
    assert read_jsonl(output)[0]["low_confidence"] == "mine"
    assert run("predict", tiny_pipeline_dir, source, output, "--min-confidence", 0).exit_code == 0
    [record] = read_jsonl(output)
    assert list(record) == ["line", "text", "entities", "low_confidence"] and record["low_confidence"] == []


def test_a_lower_option_restores_what_the_model_config_dropped(strict_model, work, baseline, threshold):
    # the model's own threshold: its records have "low_confidence" without the option
    output = work / "strict.jsonl"
    assert run("predict", strict_model, work / "in.txt", output).exit_code == 0
    records = read_jsonl(output)
    for record, everything in zip(records, baseline):
        assert_split(record["entities"], record["low_confidence"], everything, Thresholds(0.99))
    assert any(r["low_confidence"] for r in records)
    # --min-confidence 0: nothing below it, everything back in "entities"
    assert run("predict", strict_model, work / "in.txt", output, "--min-confidence", 0).exit_code == 0
    records = read_jsonl(output)
    assert [r["entities"] for r in records] == baseline and all(r["low_confidence"] == [] for r in records)
    # any lower threshold: the split of that threshold alone
    assert run("predict", strict_model, work / "in.txt", output, "--min-confidence", threshold).exit_code == 0
    for record, everything in zip(read_jsonl(output), baseline):
        assert_split(record["entities"], record["low_confidence"], everything, Thresholds(threshold))


@pytest.mark.parametrize("value", BAD_VALUES)
def test_predict_bad_values_are_usage_errors(value, tiny_pipeline_dir, work):
    output = work / "bad.jsonl"
    result = run("predict", tiny_pipeline_dir, work / "in.txt", output, "--min-confidence", value)
    assert result.exit_code == 2, result.output
    assert "--min-confidence" in result.output and repr(value) in result.output
    assert not output.exists()


def test_a_bad_value_is_one_line_before_the_model_loads(work):
    # the model does not exist: the option's error comes first
    result = cli("predict", work / "no_such_model", work / "in.txt", work / "bad.jsonl", "--min-confidence", "PER=2")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("pos-ner predict: error: Invalid value for '--min-confidence': 'PER=2'"), lines[0]


def test_predict_onnx_backend(tiny_onnx_dir, work):
    output = work / "onnx_plain.jsonl"
    assert run("predict", tiny_onnx_dir, work / "in.txt", output, "--backend", "onnx").exit_code == 0
    plain = read_jsonl(output)
    assert all("low_confidence" not in r for r in plain)
    everything = [r["entities"] for r in plain]
    onnx_threshold = split_point(confidences_of(everything))
    result = run(
        "predict", tiny_onnx_dir, work / "in.txt", output, "--backend", "onnx", "--min-confidence", onnx_threshold
    )
    assert result.exit_code == 0, result.output
    records = read_jsonl(output)
    for record, expected in zip(records, everything):
        assert_split(record["entities"], record["low_confidence"], expected, Thresholds(onnx_threshold))
    assert any(r["entities"] for r in records) and any(r["low_confidence"] for r in records)


@pytest.mark.slow
def test_predict_n_process_2(tiny_pipeline_dir, work, nlp):
    texts = TEXTS * 4
    source = work / "many.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf8")
    everything = [doc_to_entities(doc) for doc in nlp.pipe(texts, batch_size=4)]
    threshold = split_point(confidences_of(everything))
    output = work / "many.jsonl"
    result = cli(
        "predict", tiny_pipeline_dir, source, output, "--n-process", 2, "--batch-size", 4, "--min-confidence", threshold
    )
    assert result.returncode == 0, result.stderr
    records = read_jsonl(output)
    assert len(records) == len(texts)
    for record, expected in zip(records, everything):
        assert_split(record["entities"], record["low_confidence"], expected, Thresholds(threshold))
    assert any(r["low_confidence"] for r in records)


# ---------------------------------------------------------------- annotate


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray with one CPU for the in-process runs; shut down after the module."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("pyarrow")
    if ray.is_initialized():
        pytest.skip("a Ray session is already running in this process")
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def jsonl_input(work) -> Path:
    path = work / "annotate_in.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS)), encoding="utf8")
    return path


def assert_same_split(entities, low, everything, thresholds):
    """`assert_split` against `everything` to float32 precision (the actors batch the texts differently)."""
    for entity in entities:
        assert entity["confidence"] >= thresholds.of(entity["label"]), entity
    for entity in low:
        assert entity["confidence"] < thresholds.of(entity["label"]), entity
    got = sorted(entities + low, key=key)
    assert [key(e) for e in got] == [key(e) for e in everything]
    assert [e["confidence"] for e in got] == pytest.approx([e["confidence"] for e in everything], abs=1e-5)


def test_annotate_jsonl_with_thresholds(tiny_pipeline_dir, work, jsonl_input, baseline, ray_session):
    label = Counter(e["label"] for es in baseline for e in es).most_common(1)[0][0]
    everything = [e for es in baseline for e in es]
    # "*" at a split point, LABEL's entities all kept
    default = split_point([e["confidence"] for e in everything if e["label"] != label] or [0.0, 1.0])
    output = work / "annotated.jsonl"
    options = ["--min-confidence", default, "--min-confidence", f"{label}=0"]
    result = run("annotate", tiny_pipeline_dir, jsonl_input, output, "--batch-size", 3, *options)
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(output)
    assert [row["id"] for row in rows] == list(range(len(TEXTS)))
    thresholds = Thresholds(default, ((label, 0.0),))
    for row, expected in zip(rows, baseline):
        assert list(row) == ["id", "entities", "low_confidence"]
        assert_same_split(row["entities"], row["low_confidence"], expected, thresholds)
        assert all(e["label"] != label for e in row["low_confidence"])
    assert any(row["low_confidence"] for row in rows)


def test_annotate_parquet_has_the_column_with_thresholds(
    tiny_pipeline_dir, work, jsonl_input, baseline, threshold, ray_session
):
    pq = pytest.importorskip("pyarrow.parquet")
    output = work / "annotated.parquet"
    result = run("annotate", tiny_pipeline_dir, jsonl_input, output, "--min-confidence", threshold)
    assert result.exit_code == 0, result.stderr
    table = pq.read_table(output)
    assert table.column_names == ["id", "entities", "low_confidence"]
    assert table.schema.field("low_confidence").type == table.schema.field("entities").type
    rows = table.to_pylist()
    for row, expected in zip(rows, baseline):
        assert_same_split(row["entities"], row["low_confidence"], expected, Thresholds(threshold))
    assert any(row["entities"] for row in rows) and any(row["low_confidence"] for row in rows)


def test_annotate_parquet_has_the_column_from_the_model_config(strict_model, work, jsonl_input, baseline, ray_session):
    pq = pytest.importorskip("pyarrow.parquet")
    output = work / "strict.parquet"
    result = run("annotate", strict_model, jsonl_input, output)
    assert result.exit_code == 0, result.stderr
    table = pq.read_table(output)
    assert table.column_names == ["id", "entities", "low_confidence"]
    rows = table.to_pylist()
    for row, expected in zip(rows, baseline):
        assert_same_split(row["entities"], row["low_confidence"], expected, Thresholds(0.99))
    assert any(row["low_confidence"] for row in rows)


def test_annotate_no_rows_with_thresholds_still_has_the_column(tiny_pipeline_dir, work):
    pq = pytest.importorskip("pyarrow.parquet")
    source = work / "empty.jsonl"
    source.write_text("\n", encoding="utf8")
    output = work / "empty.parquet"
    result = run("annotate", tiny_pipeline_dir, source, output, "--min-confidence", 0.5)
    assert result.exit_code == 0, result.stderr
    assert pq.read_table(output).column_names == ["id", "entities", "low_confidence"]


@pytest.mark.parametrize("value", ["1.5", "PER=x"])
def test_annotate_bad_values_are_usage_errors(value, tiny_pipeline_dir, work, jsonl_input):
    output = work / "bad.parquet"
    result = run("annotate", tiny_pipeline_dir, jsonl_input, output, "--min-confidence", value)
    assert result.exit_code == 2, result.output
    assert "--min-confidence" in result.output and repr(value) in result.output
    assert not output.exists()


def test_annotate_id_field_may_not_be_the_low_confidence_column(tiny_pipeline_dir, work, jsonl_input):
    result = run("annotate", tiny_pipeline_dir, jsonl_input, work / "out.parquet", "--id-field", "low_confidence")
    assert result.exit_code == 2 and "'low_confidence' is the output's own column" in result.output


# ---------------------------------------------------------------- serve


@pytest.fixture(scope="module")
def service(nlp):
    from fastapi.testclient import TestClient

    from pos_ner.serving import create_app

    with TestClient(create_app(nlp, max_texts=len(TEXTS))) as client:
        yield client


def post(client, body) -> Dict:
    response = client.post("/ner", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_serve_without_threshold_has_no_field(service, baseline):
    assert post(service, {"texts": TEXTS}) == {"results": [{"entities": entities} for entities in baseline]}
    assert post(service, {"texts": TEXTS, "min_confidence": None}) == post(service, {"texts": TEXTS})


def test_serve_request_thresholds(service, baseline, threshold):
    results = post(service, {"texts": TEXTS, "min_confidence": threshold})["results"]
    for result, everything in zip(results, baseline):
        assert list(result) == ["entities", "low_confidence"]
        assert_split(result["entities"], result["low_confidence"], everything, Thresholds(threshold))
    assert any(r["entities"] for r in results) and any(r["low_confidence"] for r in results)
    # per label, "*" for the others
    label = Counter(e["label"] for es in baseline for e in es).most_common(1)[0][0]
    body = {"texts": TEXTS, "min_confidence": {"*": threshold, label: 0}}
    for result, everything in zip(post(service, body)["results"], baseline):
        assert_split(result["entities"], result["low_confidence"], everything, Thresholds(threshold, ((label, 0.0),)))
        assert all(e["label"] != label for e in result["low_confidence"])
    [single] = post(service, {"text": TEXTS[0], "min_confidence": 1})["results"]
    assert single == {"entities": [], "low_confidence": baseline[0]}


def test_serve_default_and_request_override(nlp, baseline, threshold):
    from fastapi.testclient import TestClient

    from pos_ner.serving import create_app

    with TestClient(create_app(nlp, max_texts=len(TEXTS), min_confidence=threshold)) as client:
        results = post(client, {"texts": TEXTS})["results"]
        for result, everything in zip(results, baseline):
            assert_split(result["entities"], result["low_confidence"], everything, Thresholds(threshold))
        assert post(client, {"texts": TEXTS, "min_confidence": None})["results"] == results
        restored = post(client, {"texts": TEXTS, "min_confidence": 0})["results"]
        assert restored == [{"entities": entities, "low_confidence": []} for entities in baseline]


def test_serve_request_restores_what_the_model_config_dropped(strict_model, baseline):
    from fastapi.testclient import TestClient

    from pos_ner.serving import create_app

    with TestClient(create_app(spacy.load(strict_model), max_texts=len(TEXTS))) as client:
        results = post(client, {"texts": TEXTS})["results"]
        for result, everything in zip(results, baseline):
            assert_split(result["entities"], result["low_confidence"], everything, Thresholds(0.99))
        assert any(r["low_confidence"] for r in results)
        restored = post(client, {"texts": TEXTS, "min_confidence": 0.0})["results"]
        assert restored == [{"entities": entities, "low_confidence": []} for entities in baseline]


@pytest.mark.parametrize(
    "value,field,kind",
    [
        ("0.5", "min_confidence", "invalid_type"),
        (True, "min_confidence", "invalid_type"),
        ([0.5], "min_confidence", "invalid_type"),
        (1.5, "min_confidence", "invalid_value"),
        (-0.1, "min_confidence", "invalid_value"),
        ({"PER": 2}, "min_confidence[PER]", "invalid_value"),
        ({"*": 0.5, "PER": "high"}, "min_confidence[PER]", "invalid_type"),
        ({"PER": None}, "min_confidence[PER]", "invalid_type"),
        ({"": 0.5}, "min_confidence", "invalid_value"),
    ],
)
def test_serve_bad_request_values_are_422(service, value, field, kind):
    response = service.post("/ner", json={"text": TEXTS[0], "min_confidence": value})
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["error"], body["field"]) == (kind, field) and field in body["message"]


def test_serve_the_field_alone_is_no_request(service):
    response = service.post("/ner", json={"min_confidence": 0.5})
    assert response.status_code == 422 and response.json()["error"] == "missing_field"


def test_serve_openapi_describes_the_field(service):
    spec = service.get("/openapi.json").json()
    schema = spec["paths"]["/ner"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    for request in schema["oneOf"]:
        assert "min_confidence" in request["properties"] and "min_confidence" not in request["required"]
    result = spec["components"]["schemas"]["Result"]
    assert "low_confidence" in result["properties"] and result["required"] == ["entities"]


def test_serve_batched_requests_get_their_own_thresholds(nlp, threshold, monkeypatch):
    """Two requests with different thresholds, queued while the worker is busy,
    share one pipeline call; each gets the split of its own threshold."""
    import httpx
    from test_serve_faults import running_server

    from pos_ner.serving import app as serving_app
    from pos_ner.serving import create_app

    # counting never takes turns here, on however busy a machine: both batches are ready in one step
    monkeypatch.setattr(serving_app, "COUNT_SLICE_S", 60.0)

    api = create_app(nlp, max_texts=len(TEXTS))
    worker = api.state.worker
    run_batch = worker.run_batch
    calls: List[List[str]] = []
    busy, proceed = threading.Event(), threading.Event()

    def blocking_run_batch(texts: List[str]) -> List[Dict]:
        calls.append(list(texts))
        if len(calls) == 1:
            busy.set()
            assert proceed.wait(30)
        return run_batch(texts)

    worker.run_batch = blocking_run_batch
    with running_server(api) as (url, _), ThreadPoolExecutor(3) as pool:

        def ask(body):
            return httpx.post(f"{url}/ner", json=body, timeout=60, trust_env=False)

        first = pool.submit(ask, {"text": "Lena ."})
        assert busy.wait(30)
        low = pool.submit(ask, {"texts": TEXTS, "min_confidence": threshold})
        none = pool.submit(ask, {"texts": TEXTS, "min_confidence": 0})
        deadline = time.monotonic() + 30
        while len(worker._jobs) < 2:  # both queued behind the busy call
            assert time.monotonic() < deadline, "the requests did not reach the worker"
            time.sleep(0.01)
        proceed.set()
        responses = [future.result(60) for future in (first, low, none)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert calls[1] == TEXTS + TEXTS, calls  # one shared call for both requests
    everything = [r["entities"] for r in responses[2].json()["results"]]
    assert all(r["low_confidence"] == [] for r in responses[2].json()["results"])
    results = responses[1].json()["results"]
    for result, expected in zip(results, everything):
        assert_split(result["entities"], result["low_confidence"], expected, Thresholds(threshold))
    assert any(r["low_confidence"] for r in results) and any(r["entities"] for r in results)
    assert "low_confidence" not in responses[0].json()["results"][0]


def test_serve_option_from_the_environment(tiny_pipeline_dir, tmp_path, threshold):
    import httpx

    log = tmp_path / "server.log"
    with serve_process(tiny_pipeline_dir, log, {"NER_MIN_CONFIDENCE": f"{threshold}", "NER_MAX_TEXTS": "8"}) as url:
        plain = httpx.post(f"{url}/ner", json={"texts": TEXTS, "min_confidence": 0}, timeout=60, trust_env=False)
        split = httpx.post(f"{url}/ner", json={"texts": TEXTS}, timeout=60, trust_env=False)
    everything = [r["entities"] for r in plain.json()["results"]]
    results = split.json()["results"]
    for result, expected in zip(results, everything):
        assert_split(result["entities"], result["low_confidence"], expected, Thresholds(threshold))
    assert any(r["low_confidence"] for r in results)
    assert f"min confidence by default: {threshold}" in log.read_text()


@pytest.mark.parametrize("value", ["2", "PER=x"])
def test_serve_bad_option_is_a_usage_error(value, work):
    result = run("serve", work / "no_such_model", "--min-confidence", value)
    assert result.exit_code == 2, result.output
    assert "--min-confidence" in result.output and repr(value) in result.output
