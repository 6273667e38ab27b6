"""GET /: the page to try a model (pos_ner/page), served by the HTTP API.

The page's contract is checked with FastAPI's TestClient; what a person sees is
checked in a real browser: Chromium from the system's packages (Debian's
`chromium`, or $CHROMIUM) driven by Playwright against `pos-ner serve` on
127.0.0.1. Without Chromium the browser tests skip, except under CI, where
`.ci/run` installs it and a missing browser is a failure.
POS_NER_PAGE_MODEL=PATH runs them on another model; POS_NER_PAGE_SCREENSHOT=FILE
keeps the screenshot (the README's picture: a MiniLM model, see the README).
"""

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import spacy
from fastapi.testclient import TestClient
from spacy.displacy.render import DEFAULT_LABEL_COLORS
from spacy.displacy.templates import TPL_ENT, TPL_ENTS

from pos_ner.io.records import doc_to_entities
from pos_ner.serving import PAGE_HEADERS, create_app, entity_labels

from conftest import serve_process

# Typed after the sentence: shown as text, never run. The emoji is one code point (the API's
# offsets) but two UTF-16 units (JavaScript's): the highlights after it must not shift.
INJECTION = ' 🙂 <script>window.injected = 1</script><img src="x" onerror="window.injected = 2"> & </div>'
# Candidates for the sentence typed into the page; the first with two labels among its entities is used.
SENTENCES = [
    "Angela Merkel met Tim Cook of Apple in Berlin .",
    "Anna Berg met Tom Reed in Paris .",
    "Globex opened an office in Lima .",
    "Anna Berg lives in Paris .",
    "Tom Reed met Anna Berg .",
]
CONFIG = re.compile(r'<script type="application/json" id="page-config">(.*?)</script>', re.S)


@pytest.fixture(scope="module")
def model_dir(tiny_pipeline_dir):
    return Path(os.environ.get("POS_NER_PAGE_MODEL") or tiny_pipeline_dir)


@pytest.fixture(scope="module")
def nlp(model_dir):
    return spacy.load(model_dir)


def page_settings(html: str) -> dict:
    blocks = CONFIG.findall(html)
    assert len(blocks) == 1
    return json.loads(blocks[0])


def test_page_and_its_files_come_from_the_app(nlp):
    with TestClient(create_app(nlp, model_name="tiny", max_chars=300)) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        for name, value in PAGE_HEADERS.items():
            assert page.headers[name] == value
        assert "script-src 'self';" in page.headers["content-security-policy"]  # no inline or foreign script
        # every script and stylesheet the page loads is served here, none from elsewhere
        loaded = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sorted(loaded) == ["data:,", "page.css", "page.js"]
        for path, media in (("/page.js", "text/javascript"), ("/page.css", "text/css")):
            response = client.get(path)
            assert response.status_code == 200 and response.headers["content-type"].startswith(media)
            assert response.headers["content-security-policy"] == PAGE_HEADERS["Content-Security-Policy"]
        settings = page_settings(page.text)
        assert settings["model"] == "tiny" and settings["pipeline"] == nlp.pipe_names
        assert settings["labels"] == list(nlp.get_pipe("ner").labels) == entity_labels(nlp)
        # displaCy's own markup and colours; CoNLL's PER and MISC borrow PERSON's and NORP's
        assert settings["templates"] == {"ent": TPL_ENT.strip(), "ents": TPL_ENTS.strip()}
        assert settings["colors"]["ORG"] == DEFAULT_LABEL_COLORS["ORG"]
        assert settings["colors"]["PER"] == DEFAULT_LABEL_COLORS["PERSON"]
        assert settings["max_chars"] == 300
        # the page is not part of the API's schema
        assert set(client.get("/openapi.json").json()["paths"]) == {"/ner", "/health", "/metrics"}


def test_page_settings_cannot_end_their_script_block(nlp):
    """A model name is data, not markup: '</script>' in it stays inside the JSON block."""
    name = "</script><script>alert(1)</script><!--"
    with TestClient(create_app(nlp, model_name=name)) as client:
        html = client.get("/").text
    assert page_settings(html)["model"] == name
    assert html.count("<script") == 2 and "<script>alert(1)" not in html


def chromium_path():
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    reason = "no Chromium installed (apt-get install chromium; .ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser tests: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[test])")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page_url(model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("page_server") / "server.log"
    with serve_process(model_dir, log, {"NER_MAX_WORD_CHARS": "60"}) as url:
        yield url


@pytest.fixture
def page(browser, page_url):
    page = browser.new_page(viewport={"width": 1000, "height": 760})
    problems = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    # Chromium logs every 4xx answer; test_page_shows_the_apis_errors causes a 422 on purpose.
    expected = "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    page.on(
        "console",
        lambda message: message.type == "error" and message.text != expected and problems.append(message.text),
    )
    page.goto(page_url)
    yield page
    page.close()
    assert problems == []


def shown_entities(page):
    """(text, label, title) of each highlighted entity, the label's tag taken off the text."""
    rows = []
    for mark in page.locator("#result mark.entity").all():
        tag = mark.locator("span").inner_text()
        rows.append((mark.inner_text().strip().removesuffix(tag).strip(), mark.get_attribute("data-label"), tag))
    return rows


def submit(page, text):
    """Type `text`, press the button and wait until the page has shown the answer."""
    page.locator("#text").fill(text)
    with page.expect_response(lambda response: response.url.endswith("/ner")) as answer:
        page.get_by_role("button", name="Find entities").click()
    page.wait_for_function("() => !document.querySelector('#run').disabled")
    return answer.value


def shown_text(page):
    """The text in #result without the labels' tags and without whitespace (the highlights add some)."""
    text = page.evaluate(
        "() => { const copy = document.querySelector('#result').cloneNode(true); "
        "copy.querySelectorAll('mark.entity > span').forEach(tag => tag.remove()); return copy.textContent; }"
    )
    return "".join(text.split())


def css_color(page, color):
    """`color` as the browser writes a background colour back (rgb(...))."""
    return page.evaluate(
        "color => { const node = document.createElement('i'); node.style.background = color; "
        "return node.style.background; }",
        color,
    )


def test_page_in_a_browser(page, nlp, tmp_path):
    text, expected = next(
        (text, entities)
        for text, entities in ((s + INJECTION, doc_to_entities(nlp(s + INJECTION))) for s in SENTENCES)
        if len({entity["label"] for entity in entities}) >= 2
    )
    assert submit(page, text).status == 200
    # the model's entities, highlighted with displaCy's colours, label and confidence on hover
    assert shown_entities(page) == [(e["text"], e["label"], e["label"]) for e in expected]
    settings = page_settings(page.content())
    for mark, entity in zip(page.locator("#result mark.entity").all(), expected):
        assert mark.get_attribute("title") == f"{entity['label']}, confidence {entity['confidence']:.3f}"
        color = settings["colors"].get(entity["label"], settings["default_color"])
        assert mark.evaluate("node => node.style.background") == css_color(page, color)
    # ... and in the table below
    rows = [row.locator("td").all_inner_texts() for row in page.locator("#entities tbody tr").all()]
    assert rows == [
        [e["text"], e["label"], f"{e['confidence']:.3f}", f"{e['start_char']}–{e['end_char']}"] for e in expected
    ]
    # the markup typed with the sentence is shown as text: no element made, nothing run
    result = page.locator("#result")
    assert shown_text(page) == "".join(text.split())
    assert result.locator("script, img").count() == 0
    assert page.evaluate("window.injected") is None
    screenshot = Path(os.environ.get("POS_NER_PAGE_SCREENSHOT") or tmp_path / "page.png")
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes().startswith(b"\x89PNG")

    # the label filter hides one label's highlights and rows; the text stays whole
    hidden = expected[0]["label"]
    page.locator(f"#filter input[value='{hidden}']").uncheck()
    kept = [e for e in expected if e["label"] != hidden]
    assert [(t, label) for t, label, _ in shown_entities(page)] == [(e["text"], e["label"]) for e in kept]
    assert page.locator("#entities tbody tr").count() == len(kept)
    assert shown_text(page) == "".join(text.split())
    assert f"{len(expected) - len(kept)} hidden by the label filter" in page.locator("#status").inner_text()
    page.locator(f"#filter input[value='{hidden}']").check()
    assert len(shown_entities(page)) == len(expected)


def test_page_shows_the_apis_errors(page):
    """A request the API refuses (a 61-character word; NER_MAX_WORD_CHARS=60) gets its message on the page."""
    assert submit(page, "x" * 61).status == 422
    alert = page.get_by_role("alert")
    assert alert.is_visible()
    assert alert.inner_text().startswith("422 word_too_long: 'text' has a word of 61 characters")
    assert submit(page, "").status == 200  # an empty text is a valid request with no entities
    assert page.get_by_role("alert").is_hidden()
    assert page.locator("#status").inner_text() == "0 entities"
