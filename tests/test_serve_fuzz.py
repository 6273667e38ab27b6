"""Fuzz the HTTP API from its own OpenAPI schema (schemathesis) against a real
uvicorn server with the tiny pipeline: valid requests must be answered 200,
invalid ones 4xx, never 500, and every answer must match the schema."""

import pytest
import schemathesis
import spacy
from hypothesis import HealthCheck, settings
from test_serve_faults import running_server

from pos_ner.serving import create_app

MAX_EXAMPLES = 40


@pytest.fixture(scope="module")
def fuzz_server(tiny_pipeline_dir):
    # Limits small enough that examples reach them; max_request_tokens above
    # max_texts × max_chars, so that every request the schema allows is answered.
    app = create_app(spacy.load(tiny_pipeline_dir), max_texts=4, max_chars=50, max_request_tokens=200)
    with running_server(app) as (url, _):
        yield url


@pytest.fixture(scope="module")
def api_schema(fuzz_server):
    schema = schemathesis.openapi.from_url(f"{fuzz_server}/openapi.json")
    schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_api(case):
    # all of schemathesis' checks: no 5xx, documented status codes, content types,
    # headers and bodies, invalid input rejected, valid input accepted
    case.call_and_validate()
