"""`nmt serve`: the real server in a subprocess on a free loopback port, a real HTTP client."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")  # the dev extra; the server needs the serve extra
pytest.importorskip("fastapi")

from .conftest import nmt  # noqa: E402

pytestmark = pytest.mark.e2e


class Server:
    """`nmt serve RUN --checkpoint last --port 0 ARGS`, its stderr in a file."""

    def __init__(self, run_dir: Path, log: Path, *args: str) -> None:
        self.log = log
        command = [sys.executable, "-m", "nmt_cli", "serve", str(run_dir), "--checkpoint", "last"]
        with open(log, "wb") as sink:
            self.process = subprocess.Popen(
                [*command, "--port", "0", *args], stdout=sink, stderr=subprocess.STDOUT
            )
        self.url = self._wait_for_url()
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + 180  # imports and loading, on a loaded machine
        while time.monotonic() < deadline:
            found = re.search(r"serving on (http://\S+)", self.log.read_text())
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                raise AssertionError(f"nmt serve ended:\n{self.log.read_text()}")
            time.sleep(0.1)
        raise AssertionError(f"nmt serve did not start:\n{self.log.read_text()}")

    def translate(self, body: Any) -> httpx.Response:
        return self.client.post("/translate", json=body)

    def stats(self) -> dict[str, int]:
        return self.client.get("/info").json()["stats"]

    def stop(self) -> int:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


@pytest.fixture(scope="module")
def server(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Batches of up to 8 sentences; a sentence waits up to 1 s for company."""
    log = tmp_path_factory.mktemp("serve") / "server.log"
    running = Server(run_dir, log, "--max-batch", "8", "--max-wait-ms", "1000")
    yield running
    assert running.stop() == 0


@pytest.fixture(scope="module")
def strict(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Small limits: 4 sentences a request or in the queue, 4 KiB, 1 s; sentences wait 3 s."""
    log = tmp_path_factory.mktemp("serve") / "strict.log"
    limits = ["--max-lines", "4", "--max-queue", "4", "--max-body-kb", "4", "--timeout", "1"]
    running = Server(run_dir, log, *limits, "--max-wait-ms", "3000")
    yield running
    assert running.stop() == 0


def translate_json(run_dir: Path, lines: list[str], *args: str) -> list[dict[str, Any]]:
    """`nmt translate --json` records, without "line" (as the server answers)."""
    result = nmt(
        "translate", str(run_dir), "--checkpoint", "last", "--json", *args,
        input="\n".join(lines) + "\n",
    )  # fmt: skip
    records = [json.loads(line) for line in result.stdout.splitlines()]
    return [{k: v for k, v in r.items() if k != "line"} for r in records]


def test_answers_equal_nmt_translate_in_request_order(
    server: Server, run_dir: Path, corpus: Path
) -> None:
    lines = [*(corpus / "test.src").read_text().splitlines()[:12], ""]
    asked = {"text": lines, "n_best": 2, "alignments": True}
    reference = translate_json(run_dir, lines, "--n-best", "2", "--with-attention")
    answer = server.translate(asked)
    assert answer.status_code == 200, answer.text
    assert answer.json()["translations"] == reference  # greedy: the next test
    assert reference[-1]["translation"] == ""  # the empty line
    # ... while the tiny model writes something for (nearly) every other line
    assert sum(bool(r["translation"]) for r in reference[:-1]) >= 0.9 * (len(reference) - 1)


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(
    server: Server, run_dir: Path, corpus: Path
) -> None:
    lines = (corpus / "test.src").read_text().splitlines()[12:20]
    reference = translate_json(run_dir, lines, "--beam", "1")
    before = server.stats()
    with ThreadPoolExecutor(len(lines)) as pool:
        answers = list(pool.map(lambda line: server.translate({"text": [line], "beam": 1}), lines))
    assert [a.json()["translations"] for a in answers] == [[r] for r in reference]
    after = server.stats()
    assert after["sentences"] - before["sentences"] == 8
    assert after["batches"] - before["batches"] == 1  # all 8 in one search
    assert after["requests"] - before["requests"] == 8


def test_health_info_and_docs(server: Server) -> None:
    assert server.client.get("/health").json() == {"status": "ok"}
    info = server.client.get("/info").json()
    assert info["model"]["checkpoints"] == ["last"] and info["model"]["parameters"] > 0
    assert info["vocabulary"]["source"] == 100 and info["settings"]["max_batch"] == 8
    assert info["settings"]["beam"] == 3  # the model's decode.beam
    assert re.fullmatch(r"\d+\.\d+\.\d+", info["version"])
    schema = server.client.get("/openapi.json").json()
    assert {"/translate", "/health", "/info"} <= set(schema["paths"])
    assert server.client.get("/docs").status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"text": ["3+4", 5]}, 422, "text.1: Input should be a valid string"),
        ({"text": ["3+4"], "beam": "2"}, 422, "beam: Input should be a valid integer"),
        ({"text": ["3+4"], "n_best": 0}, 422, "n_best: Input should be greater than or equal to 1"),
        ({"txt": ["3+4"]}, 422, "text: Field required; txt: Extra inputs are not permitted"),
        (["3+4"], 422, "body: Input should be a valid dictionary"),
        (b'{"text": ["3+4"', 400, "the body is not valid JSON"),
        (b'{"text": ["3+4"]}', 415, "the body must be JSON (Content-Type: application/json)"),
        ({"text": ["a"] * 5}, 413, "text: 5 lines; at most 4 a request"),
        ({"text": ["a" * 5000]}, 413, "the request body is over 4,096 bytes"),
    ],
)
def test_a_bad_request_gets_a_status_and_a_detail_naming_its_field(
    strict: Server, body: Any, status: int, detail: str
) -> None:
    if isinstance(body, bytes):
        kind = "text/plain" if status == 415 else "application/json"
        answer = strict.client.post("/translate", content=body, headers={"content-type": kind})
    else:
        answer = strict.translate(body)
    assert answer.status_code == status
    assert answer.json()["detail"].startswith(detail), answer.json()


def test_a_full_queue_gets_503_and_a_slow_request_504_alone(strict: Server) -> None:
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(strict.translate, {"text": ["3+4", "1+1", "2+2"]})
        deadline = time.monotonic() + 30
        while strict.stats()["queued"] < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        full = strict.translate({"text": ["5+5", "6+6"]})  # 3 + 2 > --max-queue 4
        assert full.status_code == 503 and full.headers["retry-after"] == "1"
        assert "3 sentences are waiting (at most 4)" in full.json()["detail"]
        late = waiting.result()  # it waits 3 s for company: over its 1 s
    assert late.status_code == 504 and late.json()["detail"] == "not translated within 1 s"
    assert strict.stats()["queued"] == 0  # the late one left the queue


def test_sigterm_finishes_the_request_in_flight_then_exits_0(run_dir: Path, tmp_path: Path) -> None:
    running = Server(run_dir, tmp_path / "server.log", "--max-wait-ms", "2000")
    expected = running.translate({"text": ["3+4"], "beam": 1}).json()
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(running.translate, {"text": ["3+4"], "beam": 1})
        deadline = time.monotonic() + 30
        while running.stats()["queued"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        running.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.ConnectError):  # no longer accepting
            httpx.get(f"{running.url}/health", timeout=5)
        answer = in_flight.result()
    assert answer.status_code == 200 and answer.json() == expected
    assert running.process.wait(60) == 0
    assert "stopped: 2 requests answered" in running.log.read_text()
