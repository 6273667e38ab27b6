"""GET /: a page to try the model (its files are pos_ner/page, package data).

It calls POST /ner and marks the entities up with displaCy's entity template
and colours, as `displacy.render(doc, style="ent")` does. Everything it loads
comes from this app, and its Content Security Policy (`PAGE_HEADERS`, on the
page and each of its files) allows no inline or foreign script, so text that
escaped escaping still could not run.
"""

import json
from pathlib import Path
from typing import Any, Callable, Dict, List

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from spacy.language import Language

PAGE_DIR = Path(__file__).parent.parent / "page"
# The page's own files, by path: (file in PAGE_DIR, media type).
PAGE_ASSETS = {
    "/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/page.css": ("page.css", "text/css; charset=utf-8"),
}
PAGE_HEADERS = {
    # Scripts only from this app's own files (no inline script, no CDN): text that escaped
    # escaping still could not run. displaCy's markup styles its elements inline.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# displaCy's colours have no CoNLL-2003 names: PER takes PERSON's, MISC (mostly
# nationalities, events and works) NORP's.
LABEL_COLOR_ALIASES = {"PER": "PERSON", "MISC": "NORP"}


def entity_labels(nlp: Language) -> List[str]:
    """The labels of the components that set `doc.ents`, in their order."""
    labels: List[str] = []
    for name, component in nlp.pipeline:
        if "doc.ents" in nlp.get_pipe_meta(name).assigns:
            labels.extend(label for label in getattr(component, "labels", ()) if label not in labels)
    return labels


def page_html(nlp: Language, health: Dict[str, Any], max_chars: int) -> str:
    """GET /'s page: pos_ner/page/index.html with its settings in a JSON data
    block. The data block holds displaCy's entity templates and colours, so the
    page marks entities up exactly as `displacy.render(doc, style="ent")` does."""
    from spacy.displacy.render import DEFAULT_LABEL_COLORS
    from spacy.displacy.templates import TPL_ENT, TPL_ENTS

    labels = entity_labels(nlp)
    colors = dict(DEFAULT_LABEL_COLORS)
    for label, alias in LABEL_COLOR_ALIASES.items():
        colors.setdefault(label, DEFAULT_LABEL_COLORS[alias])
    settings = {
        "model": health["model"],
        "version": health["version"],
        "pipeline": health["pipeline"],
        "labels": labels,
        "colors": colors,
        "default_color": "#ddd",  # displaCy's background for labels without a colour
        "templates": {"ent": TPL_ENT.strip(), "ents": TPL_ENTS.strip()},
        "max_chars": max_chars,
    }
    # Inside <script>, "</script>" or "<!--" in a value would end the block: < > & as \u escapes.
    data = json.dumps(settings).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (PAGE_DIR / "index.html").read_text(encoding="utf-8").replace("<!--CONFIG-->", data)


def asset_route(content: bytes, media: str) -> Callable[[], Any]:
    """The endpoint that answers one of the page's files."""

    async def asset() -> Response:
        return Response(content, media_type=media, headers=PAGE_HEADERS)

    return asset


def add_page_routes(app: FastAPI, page: str) -> None:
    """GET / (`page`, from `page_html`) and the page's files, none of them in the OpenAPI schema;
    the files are read now, once."""
    assets = {path: ((PAGE_DIR / name).read_bytes(), media) for path, (name, media) in PAGE_ASSETS.items()}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> Response:
        """The page to try the model."""
        return HTMLResponse(page, headers=PAGE_HEADERS)

    for path, (content, media) in assets.items():
        app.add_api_route(path, asset_route(content, media), methods=["GET"], include_in_schema=False)
