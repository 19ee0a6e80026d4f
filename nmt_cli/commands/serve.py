"""`nmt serve`: a model behind an HTTP JSON API (needs the `serve` extra)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from nmt_cli.app import app, user_errors

SERVE_HELP = """\
Serve a model over HTTP: POST /translate {"text": ["...", ...], "beam": 5, "n_best": 1,
"alignments": false} answers {"translations": [...]}, one `nmt translate --json` record per
line (without "line"), in request order. GET /health, GET /info (model, vocabulary, settings,
version, batching counters); API docs at /docs.

Sentences of concurrent requests that arrive within --max-wait-ms are searched in one
length-sorted batch of up to --max-batch sentences. Refusals: 400 or 422 for bad JSON or a
bad field, 413 over --max-lines or --max-body-kb, 503 with Retry-After when over --max-queue
sentences would wait, 504 when not answered within --timeout. SIGTERM or Ctrl-C: stop
accepting, finish the requests in flight, exit 0.
"""
_Opt = typer.Option
log = logging.getLogger("nmt_cli.serve")


@app.command(help=SERVE_HELP, epilog="Example: nmt serve runs/de-en --beam 1 --port 8080")
def serve(
    model: Annotated[Path, typer.Argument(help="Run folder or checkpoint .pt file.")],
    checkpoint: Annotated[
        Optional[list[str]],  # noqa: UP045
        _Opt(help="best, last, or a file in the run's checkpoints/; repeat it to ensemble."),
    ] = None,
    host: Annotated[str, _Opt(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, _Opt(help="Port to listen on (0: any free port).")] = 8080,
    beam: Annotated[
        Optional[int],  # noqa: UP045
        _Opt(help="Beam of requests that name none (1 = greedy); default: the model's."),
    ] = None,
    max_batch: Annotated[int, _Opt(help="Sentences searched together at most.")] = 64,
    max_wait_ms: Annotated[
        float, _Opt(help="How long a sentence waits for others to batch with.")
    ] = 5.0,
    max_queue: Annotated[int, _Opt(help="Sentences that may wait (then 503).")] = 1024,
    max_lines: Annotated[int, _Opt(help="Sentences per request (then 413).")] = 256,
    max_body_kb: Annotated[int, _Opt(help="Request body size in KiB (then 413).")] = 1024,
    timeout: Annotated[float, _Opt(help="Seconds a request may take (then 504).")] = 60.0,
    device: Annotated[str, _Opt(help="cpu, auto, cuda or cuda:N.")] = "cpu",
    precision: Annotated[
        str, _Opt(help="auto, fp32, bf16 or int8 (see nmt translate --help).")
    ] = "auto",
) -> None:
    """See SERVE_HELP (`nmt serve --help`)."""
    with user_errors():
        from nmt_cli.serving.server import require_web_stack

        require_web_stack()
        from nmt_cli.runtime import long_lived
        from nmt_cli.serving.server import describe, listen
        from nmt_cli.serving.server import serve as run

        started = time.perf_counter()
        with long_lived():  # the imports and the model live until exit
            from nmt_cli.serving.api import ServeSettings
            from nmt_cli.translate import Translator

            names = checkpoint or ["best"]
            sock = listen(host, port)  # a taken port is refused before the slow part
            translator = Translator.load(model, names, device, precision)
            settings = ServeSettings(
                beam or translator.decode.beam,
                max_batch,
                max_wait_ms,
                max_queue,
                max_lines,
                max_body_kb * 1024,
                timeout,
            )
        log.info(
            "the model loaded in %.2f s (%s)", time.perf_counter() - started, translator.precision
        )
        run(translator, describe(translator, model, names), settings, sock)
