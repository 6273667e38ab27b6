"""How `pos-ner serve` holds up under big requests, stalled clients, bursts and
long runs. Starts the server on a loopback port itself (its default limits),
then measures:

(a) latency of one-sentence requests while maximum-size requests (just under
    max_request_tokens) run concurrently;
(b) normal clients while 20 clients stall mid-body;
(c) a burst of 2,000 requests from 8 clients: errors, and /metrics against
    what was sent;
(d) the server's RSS after each of 10 bursts of 500 requests, each text with
    an unseen word (what memory_zone is for);

plus probes (one bad input each, its answer). Prints a table, writes JSON.
"""

import asyncio
import itertools
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import httpx
import psutil
import spacy
import typer
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.load_test import SENTENCES

ROOT = Path(__file__).resolve().parents[1]
app = typer.Typer(add_completion=False)


def percentile(values: List[float], p: float) -> Optional[float]:
    """Nearest-rank percentile, in milliseconds (None if empty)."""
    ordered = sorted(values)
    return 1000 * ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def metric_samples(text: str) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def big_request(max_tokens: int, max_texts: int) -> Tuple[List[str], int]:
    """`max_texts` texts of whole sentences, as many tokens as fit in `max_tokens` (counted like the server)."""
    tokenizer = spacy.blank("en")
    texts: List[List[str]] = [[] for _ in range(max_texts)]
    total = 0
    for i, sentence in enumerate(itertools.cycle(SENTENCES)):
        length = len(tokenizer.make_doc(sentence))
        if total + length > max_tokens:
            break
        texts[i % max_texts].append(sentence)
        total += length
    joined = [" ".join(parts) for parts in texts if parts]
    return joined, sum(len(tokenizer.make_doc(text)) for text in joined)


async def small_under_big(url: str, duration: float, big_texts: List[str], big_clients: int) -> Dict[str, Any]:
    """(a): one client sends one sentence at a time while `big_clients` send maximum-size requests."""
    small: List[float] = []
    big: List[float] = []
    errors: List[str] = []
    sentences = itertools.cycle(SENTENCES)
    async with httpx.AsyncClient(base_url=url, timeout=120, trust_env=False) as client:

        async def loop(body_of, latencies: List[float], deadline: float) -> None:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                response = await client.post("/ner", json=body_of())
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors.append(f"HTTP {response.status_code}")

        idle: List[float] = []
        await loop(lambda: {"text": next(sentences)}, idle, time.perf_counter() + 5)
        deadline = time.perf_counter() + duration
        bigs = [loop(lambda: {"texts": big_texts}, big, deadline) for _ in range(big_clients)]
        await asyncio.gather(loop(lambda: {"text": next(sentences)}, small, deadline), *bigs)
    return {
        "duration_s": duration,
        "big_clients": big_clients,
        "idle_small_p50_ms": percentile(idle, 50),
        "small_requests": len(small),
        "small_p50_ms": percentile(small, 50),
        "small_p99_ms": percentile(small, 99),
        "small_max_ms": 1000 * max(small) if small else None,
        "big_requests": len(big),
        "big_p50_ms": percentile(big, 50),
        "errors": errors,
    }


async def stalled_clients(url: str, stalled: int, normal: int, per_client: int) -> Dict[str, Any]:
    """(b): `stalled` clients send headers and half a body; `normal` clients meanwhile send `per_client` requests."""
    host, port = url.removeprefix("http://").split(":")
    head = b"POST /ner HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    start = time.perf_counter()
    streams = [await asyncio.open_connection(host, int(port)) for _ in range(stalled)]
    for _, writer in streams:
        writer.write(head + b'{"text": "Maria Lopez flew to' + b" " * 80)
        await writer.drain()

    async def outcome(reader: asyncio.StreamReader) -> Tuple[str, float]:
        data = await reader.read()  # until the server closes the connection
        return data.split(b"\r\n", 1)[0].decode(errors="replace"), time.perf_counter() - start

    waits = [asyncio.ensure_future(outcome(reader)) for reader, _ in streams]
    latencies: List[float] = []
    statuses: List[int] = []
    sentences = itertools.cycle(SENTENCES)

    async def client_loop() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) as client:
            for _ in range(per_client):
                t0 = time.perf_counter()
                response = await client.post("/ner", json={"text": next(sentences)})
                statuses.append(response.status_code)
                latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(client_loop() for _ in range(normal)))
    normal_done = time.perf_counter() - start
    outcomes = await asyncio.gather(*waits)
    for _, writer in streams:
        writer.close()
    return {
        "stalled_clients": stalled,
        "normal_clients": normal,
        "normal_requests": len(statuses),
        "normal_answered_200": statuses.count(200),
        "normal_p50_ms": percentile(latencies, 50),
        "normal_max_ms": 1000 * max(latencies),
        "normal_all_done_s": normal_done,
        "stalled_answers": sorted({status for status, _ in outcomes}),
        "stalled_closed_after_s": [min(t for _, t in outcomes), max(t for _, t in outcomes)],
    }


async def burst(url: str, requests: int, concurrency: int, unique_words: bool = False) -> Dict[str, Any]:
    """`requests` one-sentence requests from `concurrency` clients; errors by kind."""
    counter = itertools.count()
    errors: Dict[str, int] = {}
    done = 0
    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) as client:

        async def worker() -> None:
            nonlocal done
            while (i := next(counter)) < requests:
                text = SENTENCES[i % len(SENTENCES)]
                if unique_words:  # a word the vocab has never seen, as real traffic brings
                    text = f"{text} Ref Qz{os.getpid()}x{time.time_ns()}k{i} filed."
                try:
                    response = await client.post("/ner", json={"text": text})
                except httpx.HTTPError as err:
                    errors[type(err).__name__] = errors.get(type(err).__name__, 0) + 1
                    continue
                if response.status_code == 200:
                    done += 1
                else:
                    errors[f"HTTP {response.status_code}"] = errors.get(f"HTTP {response.status_code}", 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return {"requests": requests, "ok": done, "errors": errors, "seconds": elapsed, "per_second": requests / elapsed}


async def probes(url: str, max_connections: int) -> List[Dict[str, Any]]:
    """One bad input each against the running server, and what it answered."""
    results: List[Dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) as client:

        async def probe(name: str, method: str, path: str, **kwargs: Any) -> None:
            start = time.perf_counter()
            response = await client.request(method, path, **kwargs)
            results.append(
                {
                    "input": name,
                    "status": response.status_code,
                    "body": response.text[:300],
                    "x_request_id": "x-request-id" in response.headers,
                    "ms": 1000 * (time.perf_counter() - start),
                }
            )

        await probe("GET /health", "GET", "/health")
        await probe("text/plain body", "POST", "/ner", content=b"Maria Lopez", headers={"content-type": "text/plain"})
        await probe("NaN in the JSON body", "POST", "/ner", content=b'{"text": NaN}', headers=JSON_HEADERS)
        await probe("64 texts of 10,000 characters", "POST", "/ner", json={"texts": ["Lisbon " * 1428] * 64})
        await probe("one word of 9,006 characters", "POST", "/ner", json={"text": "Lisbon" + "!" * 9000})
        runs = " ".join(["!" * 499] * 20)  # 20 words within max_word_chars, 9,980 tokens: the tokenizer's count
        await probe("20 runs of 499 '!' (9,980 tokens)", "POST", "/ner", json={"text": runs})
    # too many connections: hold the limit's worth of idle connections, then ask once more
    host, port = url.removeprefix("http://").split(":")
    idle = [await asyncio.open_connection(host, int(port)) for _ in range(max_connections)]
    await asyncio.sleep(0.5)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n")
    answer = await reader.read()
    status_line, _, rest = answer.partition(b"\r\n")
    results.append(
        {
            "input": f"a request on connection {max_connections + 1} (limit {max_connections})",
            "status": int(status_line.split()[1]),
            "body": rest.partition(b"\r\n\r\n")[2].decode(),
            "x_request_id": b"x-request-id" in rest.lower(),
        }
    )
    for _, w in [*idle, (reader, writer)]:
        w.close()
    await asyncio.sleep(0.5)
    return results


JSON_HEADERS = {"content-type": "application/json"}


def start_server(model: str, port: int, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "pos_ner", "serve", model, "--port", str(port)]
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 300
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the server did not start in 300 s")
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1, trust_env=False)
            return process
        except httpx.TransportError:
            time.sleep(0.5)


def format_table(result: Dict[str, Any]) -> str:
    a, b, c, d = (result[key] for key in ("a_latency_under_big", "b_stalled", "c_burst", "d_rss"))
    rows = [
        ("(a) small alone p50", f"{a['idle_small_p50_ms']:.0f} ms"),
        (
            "(a) small p50 / p99 / max",
            f"{a['small_p50_ms']:.0f} / {a['small_p99_ms']:.0f} / {a['small_max_ms']:.0f} ms "
            f"({a['small_requests']} requests; {a['big_clients']} clients send {result['big_tokens']}-token requests)",
        ),
        ("(a) big requests p50", f"{a['big_p50_ms']:.0f} ms ({a['big_requests']} requests), errors {len(a['errors'])}"),
        (
            "(b) normal clients",
            f"{b['normal_answered_200']}/{b['normal_requests']} answered 200, max {b['normal_max_ms']:.0f} ms, "
            f"all done after {b['normal_all_done_s']:.1f} s",
        ),
        (
            "(b) stalled clients",
            f"{b['stalled_clients']}: {', '.join(b['stalled_answers'])} after "
            f"{b['stalled_closed_after_s'][0]:.1f}-{b['stalled_closed_after_s'][1]:.1f} s",
        ),
        (
            "(c) burst",
            f"{c['ok']}/{c['requests']} ok, errors {c['errors'] or 0}, {c['per_second']:.1f} req/s, "
            f"metrics match: {c['metrics_match']}",
        ),
        (
            "(d) RSS per burst",
            " ".join(f"{mb:.0f}" for mb in d["rss_mb"]) + f" MB (last/first {d['last_over_first']:.3f})",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    probe_rows = [f"{p['input']:<40} {p['status']} {p['body'][:90]}" for p in result["probes"]]
    return "\n".join([*(f"{name:<{width}}  {value}" for name, value in rows), "", *probe_rows])


@app.command()
def main(
    model: str = typer.Option("training/pos_ner/model-best", help="Pipeline to serve"),
    duration: float = typer.Option(30.0, min=1, help="Seconds of (a)"),
    big_clients: int = typer.Option(2, min=1, help="Clients sending maximum-size requests in (a)"),
    output: Path = typer.Option(ROOT / "benchmarks" / "results" / "service_faults.json"),
    max_request_tokens: int = typer.Option(4_000, help="The server's default limit"),
    max_texts: int = typer.Option(64, help="The server's default limit"),
    max_connections: int = typer.Option(64, help="The server's default limit"),
):
    """Fault and load figures of `pos-ner serve MODEL` on loopback."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkdtemp(prefix="service_faults_")) / "server.log"
    output.parent.mkdir(parents=True, exist_ok=True)
    big_texts, big_tokens = big_request(max_request_tokens, max_texts)
    process = start_server(model, port, log)
    server = psutil.Process(process.pid)
    result: Dict[str, Any] = {"model": model, "big_tokens": big_tokens, "big_texts": len(big_texts)}
    try:
        result["a_latency_under_big"] = asyncio.run(small_under_big(url, duration, big_texts, big_clients))
        result["b_stalled"] = asyncio.run(stalled_clients(url, stalled=20, normal=4, per_client=10))
        before = metric_samples(httpx.get(f"{url}/metrics", trust_env=False).text)
        c = asyncio.run(burst(url, requests=2000, concurrency=8))
        after = metric_samples(httpx.get(f"{url}/metrics", trust_env=False).text)
        keys = {
            "requests_200": ("ner_requests_total", (("endpoint", "/ner"), ("status", "200"))),
            "texts": ("ner_texts_total", ()),
            "latency_count": ("ner_request_duration_seconds_count", (("endpoint", "/ner"),)),
        }
        c["metrics_delta"] = {name: after.get(key, 0) - before.get(key, 0) for name, key in keys.items()}
        c["metrics_match"] = all(delta == c["ok"] for delta in c["metrics_delta"].values()) and c["ok"] == 2000
        result["c_burst"] = c
        rss = []
        for _ in range(10):
            asyncio.run(burst(url, requests=500, concurrency=8, unique_words=True))
            rss.append(server.memory_info().rss / 2**20)
        result["d_rss"] = {"rss_mb": rss, "last_over_first": rss[-1] / rss[0]}
        result["probes"] = asyncio.run(probes(url, max_connections))
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    result["server_log"] = str(log)
    typer.echo(format_table(result))
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf8")


if __name__ == "__main__":
    app()
