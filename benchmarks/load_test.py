"""Bounded load test for scripts/serve.py: concurrent POST /ner requests for
a fixed time, to a loopback address only. Prints a table and writes JSON:
requests (completed), errors, throughput of the successful requests (req/s,
texts/s) and their p50/p95/p99 latency.
"""

import asyncio
import itertools
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import urlsplit

import httpx
import typer

LOOPBACK = ("127.0.0.1", "localhost", "::1")
TEMPLATES = [
    "{per} flew from {loc} to meet the board of {org} on Monday.",
    "Shares of {org} rose after {per} said the plant in {loc} would reopen.",
    "{per}, who grew up in {loc}, joined {org} last spring.",
    "The mayor of {loc} thanked {org} and {per} for the donation.",
]
PEOPLE = ["Maria Lopez", "John Carter", "Aiko Tanaka", "Peter Novak", "Fatima Bello"]
PLACES = ["Lisbon", "Toronto", "Nairobi", "Hamburg", "Osaka"]
ORGS = ["Northwind Traders", "Blue Harbor Bank", "Vega Motors", "Helix Labs", "Orion Media"]
SENTENCES = [t.format(per=p, loc=loc, org=o) for t in TEMPLATES for p, loc, o in zip(PEOPLE, PLACES, ORGS)]

app = typer.Typer(add_completion=False)


def percentile_ms(seconds: List[float], p: float) -> Optional[float]:
    """Nearest-rank percentile of sorted latencies, in milliseconds (None if empty)."""
    return 1000 * seconds[max(0, math.ceil(p / 100 * len(seconds)) - 1)] if seconds else None


async def run_load(url: str, duration: float, concurrency: int, texts_per_request: int, timeout: float) -> Dict:
    """Keep `concurrency` requests in flight for `duration` seconds; the summary."""
    sentences = itertools.cycle(SENTENCES)
    latencies: List[float] = []
    errors: Counter = Counter()
    # trust_env=False: never route loopback traffic through a proxy from the environment
    async with httpx.AsyncClient(base_url=url, timeout=timeout, trust_env=False) as client:
        health = (await client.get("/health")).raise_for_status().json()

        async def worker(deadline: float) -> None:
            while time.perf_counter() < deadline:
                texts = [next(sentences) for _ in range(texts_per_request)]
                start = time.perf_counter()
                try:
                    response = await client.post("/ner", json={"texts": texts})
                except httpx.HTTPError as err:
                    errors[type(err).__name__] += 1
                    continue
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors[f"HTTP {response.status_code}"] += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker(start + duration) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "url": url,
        "model": health.get("model"),
        "duration_s": elapsed,
        "concurrency": concurrency,
        "texts_per_request": texts_per_request,
        "requests": len(latencies) + sum(errors.values()),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "requests_per_second": len(latencies) / elapsed,
        "texts_per_second": len(latencies) * texts_per_request / elapsed,
        "latency_ms": {f"p{p}": percentile_ms(latencies, p) for p in (50, 95, 99)},
    }


def format_table(result: Dict) -> str:
    latency = result["latency_ms"]
    rows = [
        ("url", result["url"]),
        (
            "duration",
            f"{result['duration_s']:.1f} s, concurrency {result['concurrency']}, "
            f"{result['texts_per_request']} text(s)/request",
        ),
        ("requests", f"{result['requests']} ({result['errors']} errors)"),
        ("throughput", f"{result['requests_per_second']:.1f} req/s, {result['texts_per_second']:.1f} texts/s"),
        *((f"latency {k}", "n/a" if v is None else f"{v:.1f} ms") for k, v in latency.items()),
    ]
    return "\n".join(f"{name:<12} {value}" for name, value in rows)


@app.command()
def main(
    url: str = typer.Option("http://127.0.0.1:8000", help="Server base URL (loopback only)"),
    duration: float = typer.Option(10.0, min=0.1, max=600, help="Seconds to send requests for"),
    concurrency: int = typer.Option(4, min=1, max=64, help="Requests in flight"),
    texts_per_request: int = typer.Option(1, min=1, max=64),
    timeout: float = typer.Option(30.0, min=0.1, help="Per-request timeout in seconds"),
    output: Optional[Path] = typer.Option(None, help="JSON file to write the results to"),
):
    """Load-test POST /ner of a local NER server."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in LOOPBACK:
        typer.echo(f"refusing {url!r}: only http(s) URLs on {', '.join(LOOPBACK)} are allowed", err=True)
        raise typer.Exit(2)
    try:
        result = asyncio.run(run_load(url, duration, concurrency, texts_per_request, timeout))
    except httpx.HTTPError as err:
        typer.echo(f"{url}/health failed: {err!r}", err=True)
        raise typer.Exit(1) from None
    typer.echo(format_table(result))
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf8")


if __name__ == "__main__":
    app()
