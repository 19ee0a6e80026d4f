"""Load test of `nmt serve`: a real HTTP client on the loopback address, one sentence a request.

At each concurrency (default 1, 8 and 64), that many clients send test_2016_flickr sentences one
per request, each client its next sentence as soon as it has its answer, until --requests
answers or --seconds have passed. Measures sentences/s and the latency percentiles, and checks
every answer against `nmt translate` of the same lines with the same settings: "lost" is a
request without a 200 answer, "misrouted" an answer that is another line's translation,
"different" one that is no line's translation. The server's batching counters (GET /info)
give the mean batch.

    python benchmarks/serve_load.py --model /work/models/m30k --data ../shared/data/multi30k
        [--beam 1] [--concurrency 1,8,64] [--requests 1000] [--seconds 120]

Writes benchmarks/results/serve.json. The client runs on the same machine as the server and
takes some of its CPU (one Python process, asyncio). It is aiohttp: httpx's async client took
about 3 ms of CPU a request at 64 connections here (aiohttp 0.2 ms), so the client, not the
server, set the pace.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
from ab import cpu_model
from quality import git_commit

ROOT = Path(__file__).resolve().parents[1]
NMT = [sys.executable, "-m", "nmt_cli"]


def reference(model: Path, checkpoint: str, lines: list[str], beam: int) -> tuple[list[str], float]:
    """`nmt translate` of the lines: (one translation per line, seconds of the whole process)."""
    started = time.perf_counter()
    result = subprocess.run(
        [*NMT, "-q", "translate", str(model), "--checkpoint", checkpoint, "--beam", str(beam)],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    out = result.stdout.split("\n")[: len(lines)]
    assert len(out) == len(lines), "nmt translate lost lines"
    return out, seconds


@contextmanager
def serving(model: Path, checkpoint: str, args: list[str], log: Path) -> Iterator[str]:
    """`nmt serve` on a free loopback port: yields its URL; SIGTERM and exit 0 at the end."""
    command = [*NMT, "serve", str(model), "--checkpoint", checkpoint, "--port", "0", *args]
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not (found := re.search(r"serving on (http://\S+)", log.read_text())):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"nmt serve did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield found.group(1)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(120)
    if code != 0:
        raise SystemExit(f"nmt serve exited {code}:\n{log.read_text()}")


async def load(
    url: str, lines: list[str], expected: list[str], concurrency: int, requests: int, seconds: float
) -> dict[str, Any]:
    """`concurrency` clients, one sentence a request, until `requests` answers or `seconds`."""
    owner = {text: i for i, text in reversed(list(enumerate(expected)))}
    latencies: list[float] = []
    counts = {"sent": 0, "answered": 0, "lost": 0, "misrouted": 0, "different": 0}
    next_line = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as client:
        before = await stats(client)
        started = time.perf_counter()
        deadline = started + seconds

        async def one_client() -> None:
            for n in next_line:
                if time.perf_counter() > deadline:
                    return
                i = n % len(lines)
                counts["sent"] += 1
                sent = time.perf_counter()
                try:
                    async with client.post("/translate", json={"text": [lines[i]]}) as answer:
                        assert answer.status == 200
                        got = (await answer.json())["translations"][0]["translation"]
                except Exception:
                    counts["lost"] += 1
                    continue
                latencies.append(time.perf_counter() - sent)
                counts["answered"] += 1
                if got != expected[i]:
                    counts["misrouted" if got in owner else "different"] += 1

        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        after = await stats(client)
    batches = after["batches"] - before["batches"]
    latencies.sort()
    return {
        "concurrency": concurrency,
        **counts,
        "seconds": round(wall, 2),
        "sentences_per_s": round(counts["answered"] / wall, 1),
        "latency_p50_ms": round(1000 * statistics.median(latencies), 1),
        "latency_p99_ms": round(
            1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1
        ),
        "batches": batches,
        "mean_batch": round((after["sentences"] - before["sentences"]) / max(batches, 1), 2),
    }


async def stats(client: aiohttp.ClientSession) -> dict[str, int]:
    """The server's batching counters."""
    async with client.get("/info") as answer:
        return (await answer.json())["stats"]


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| concurrency | sentences/s | × conc. 1 | p50 ms | p99 ms | mean batch | answered | lost "
        "| misrouted | different |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = results[0]["sentences_per_s"]
    for r in results:
        rate = r["sentences_per_s"]
        rows.append(
            f"| {r['concurrency']} | {rate:,.1f} | {rate / base:.2f} "
            f"| {r['latency_p50_ms']:,.0f} | {r['latency_p99_ms']:,.0f} | {r['mean_batch']} "
            f"| {r['answered']:,} | {r['lost']} | {r['misrouted']} | {r['different']} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="run folder or .pt file")
    parser.add_argument("--checkpoint", default="best")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("MULTI30K_DIR", "")))
    parser.add_argument("--split", default="test_2016_flickr.de")
    parser.add_argument("--beam", type=int, default=1)
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--requests", type=int, default=1000, help="per concurrency")
    parser.add_argument("--seconds", type=float, default=120, help="per concurrency")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/serve.json")
    args = parser.parse_args()
    lines = (args.data / args.split).read_text(encoding="utf-8").splitlines()
    expected, translate_s = reference(args.model, args.checkpoint, lines, args.beam)
    print(f"nmt translate: {len(lines)} lines in {translate_s:.1f} s (whole process)", flush=True)
    server_args = ["--beam", str(args.beam), "--max-batch", str(args.max_batch)]
    server_args += ["--max-wait-ms", str(args.max_wait_ms), "--max-queue", "4096"]
    log = args.out.with_suffix(".server.log")
    results = []
    load_before = os.getloadavg()
    with serving(args.model, args.checkpoint, server_args, log) as url:
        asyncio.run(load(url, lines, expected, 4, 32, 60))  # warm-up: kernels, connections
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            result = asyncio.run(
                load(url, lines, expected, concurrency, args.requests, args.seconds)
            )
            print(json.dumps(result), flush=True)
            results.append(result)
    report = {
        "commit": git_commit(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_1min": {
            "before": round(load_before[0], 2),
            "after": round(os.getloadavg()[0], 2),
        },
        "model": str(args.model),
        "checkpoint": args.checkpoint,
        "split": args.split,
        "server": server_args,
        "translate_whole_process_s": round(translate_s, 2),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    log.unlink(missing_ok=True)
    print(table(results))


if __name__ == "__main__":
    main()
