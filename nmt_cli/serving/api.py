"""The HTTP API of `nmt serve`: routes, request and response models, limits.

    POST /translate  {"text": [...], "beam": 5, "n_best": 1, "alignments": false}
                     -> {"translations": [one `nmt translate --json` record per line, no "line"]}
    GET  /health     -> {"status": "ok"}
    GET  /info       -> model, vocabulary, settings, version, batching counters
    GET  /docs       -> the OpenAPI (Swagger) page; the schema is at /openapi.json

Refusals, each `{"detail": "one line"}` and for that request only: 400 (not JSON), 422 (a
field of the wrong type or out of range; the detail names it), 413 (body or line count over the
limit), 503 with Retry-After (the queue is full), 504 (not translated within the timeout).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from nmt_cli import __version__
from nmt_cli.alignments import json_record
from nmt_cli.errors import ConfigError
from nmt_cli.serving.batcher import Batcher, BatchKey, QueueFull
from nmt_cli.serving.limits import BodyLimit, invalid_request
from nmt_cli.translate import Translation, Translator

MAX_BEAM = 64  # per request; wider beams belong in `nmt translate`
RETRY_AFTER_S = 1  # what a 503 asks the client to wait


@dataclass(frozen=True)
class ServeSettings:
    """How the server batches and what it refuses; checked when made.

    Attributes:
        beam: the beam of requests that name none.
        max_batch: sentences searched together at most.
        max_wait_ms: how long a sentence may wait for others to batch with.
        max_queue: sentences that may wait; a request that does not fit gets 503.
        max_lines: sentences per request; more get 413.
        max_body_bytes: request body size; more gets 413.
        timeout_s: a request not answered within this gets 504.

    Raises:
        ConfigError: a value out of range (names the option).
    """

    beam: int
    max_batch: int = 64
    max_wait_ms: float = 5.0
    max_queue: int = 1024
    max_lines: int = 256
    max_body_bytes: int = 1 << 20
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        positive = {
            "--beam": self.beam,
            "--max-batch": self.max_batch,
            "--max-queue": self.max_queue,
            "--max-lines": self.max_lines,
            "--max-body-kb": self.max_body_bytes,
            "--timeout": self.timeout_s,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"{name} must be positive (got {value})")
        if self.max_wait_ms < 0:
            raise ConfigError(f"--max-wait-ms must be 0 or more (got {self.max_wait_ms})")
        if self.beam > MAX_BEAM:
            raise ConfigError(f"--beam must be at most {MAX_BEAM} (got {self.beam})")
        if self.max_lines > self.max_queue:
            raise ConfigError(
                f"--max-lines ({self.max_lines}) must not exceed --max-queue ({self.max_queue})"
            )


class TranslateRequest(BaseModel):
    """Lines to translate, and how."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: list[str] = Field(description="The lines to translate (one sentence or more each).")
    beam: int | None = Field(
        None, ge=1, le=MAX_BEAM, description="Beam size (1 = greedy); default: the server's."
    )
    n_best: int = Field(1, ge=1, le=MAX_BEAM, description="Hypotheses per line, best first.")
    alignments: bool = Field(False, description="Add the best hypothesis' attention.")


class Hypothesis(BaseModel):
    translation: str
    score: float = Field(description="Length-normalized log-probability.")
    pieces: list[str]


class TranslationRecord(Hypothesis):
    """One line's translation: the record `nmt translate --json` prints, without "line"."""

    n_best: list[Hypothesis] | None = Field(None, description="With n_best > 1.")
    source: list[str] | None = Field(None, description="With alignments: source pieces.")
    target: list[str] | None = Field(None, description='With alignments: pieces + "</s>".')
    weights: list[list[float]] | None = Field(
        None, description="With alignments: a row per target piece, a column per source piece."
    )


class TranslateResponse(BaseModel):
    translations: list[TranslationRecord] = Field(description="One per line, in request order.")


def build_app(translator: Translator, settings: ServeSettings, about: dict[str, Any]) -> FastAPI:
    """The FastAPI app serving `translator`.

    Args:
        translator: the loaded model; only the batcher's worker thread searches with it.
        settings: batching and limits.
        about: what /info says about the model (path, checkpoints, parameters, ...).
    """

    def search(lines: list[str], beam: int, n_best: int) -> list[list[Translation]]:
        return translator.translate_lines(
            lines, beam=beam, n_best=n_best, batch_size=settings.max_batch
        )

    batcher = Batcher(search, settings.max_batch, settings.max_wait_ms / 1000, settings.max_queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()  # after the last in-flight request: the server waits for them

    app = FastAPI(
        title="nmt",
        version=__version__,
        summary="Neural machine translation: POST lines to /translate.",
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_exception_handler(RequestValidationError, invalid_request)
    _add_translate(app, batcher, settings, translator.config.model.attention != "none")
    _add_status(app, batcher, settings, about)
    return app


def _add_translate(
    app: FastAPI,
    batcher: Batcher[list[Translation]],
    settings: ServeSettings,
    has_attention: bool,
) -> None:
    @app.post("/translate", response_model=TranslateResponse, response_model_exclude_none=True)
    async def translate(request: TranslateRequest) -> JSONResponse:
        """Translate lines; sentences of concurrent requests are searched in one batch."""
        if len(request.text) > settings.max_lines:
            raise HTTPException(
                413, f"text: {len(request.text)} lines; at most {settings.max_lines} a request"
            )
        if request.alignments and not has_attention:
            raise HTTPException(422, "alignments: this model has no attention")
        key = BatchKey(request.beam or settings.beam, request.n_best)
        try:
            results = await asyncio.wait_for(
                batcher.translate(request.text, key), settings.timeout_s
            )
        except QueueFull as e:
            headers = {"Retry-After": str(RETRY_AFTER_S)}
            raise HTTPException(503, f"busy: {e}; retry later", headers) from None
        except asyncio.TimeoutError:
            raise HTTPException(504, f"not translated within {settings.timeout_s:g} s") from None
        except RuntimeError as e:
            raise HTTPException(500, str(e)) from None
        records = [
            json_record(i + 1, hyps, request.n_best > 1, request.alignments)
            for i, hyps in enumerate(results)
        ]
        for record in records:
            del record["line"]
        return JSONResponse({"translations": records})


def _add_status(
    app: FastAPI,
    batcher: Batcher[list[Translation]],
    settings: ServeSettings,
    about: dict[str, Any],
) -> None:
    @app.get("/health")
    async def health() -> dict[str, str]:
        """Answers while the model works: searching runs off the event loop."""
        return {"status": "ok"}

    @app.get("/info")
    async def info() -> dict[str, Any]:
        """The model, its vocabulary, the server's settings, and batching counters."""
        return {
            **about,
            "version": __version__,
            "settings": asdict(settings),
            "stats": asdict(batcher.stats),
        }
