"""Run `nmt serve`: load the model, listen, serve until SIGTERM or Ctrl-C, shut down cleanly.

On SIGTERM or SIGINT the server stops accepting connections, finishes the requests it has
(their queued sentences are still searched), and returns; `nmt serve` then exits 0. A second
Ctrl-C stops without waiting.
"""

from __future__ import annotations

import logging
import signal
import socket
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nmt_cli.errors import ConfigError
from nmt_cli.translate import Translator

if TYPE_CHECKING:  # the web stack is imported only when serving
    from nmt_cli.serving.api import ServeSettings

log = logging.getLogger(__name__)
BACKLOG = 2048  # connections waiting to be accepted (uvicorn's default)


def require_web_stack() -> None:
    """Raise ConfigError (one line) if the `serve` extra is not installed."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise ConfigError(
            f"nmt serve needs the web stack ({e.name} is not installed): "
            "pip install 'nmt-cli[serve]'"
        ) from None


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port (port 0: any free one), before the model loads.

    Connections made before the server runs wait in its backlog instead of being refused, so
    a client may connect as soon as the "serving on" line is out.

    Raises:
        ConfigError: the address cannot be used (taken, unknown host, no permission).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise ConfigError(f"--host {host}: {e.strerror or e}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


def describe(translator: Translator, path: Path, checkpoints: list[str]) -> dict[str, Any]:
    """What GET /info says about the model and its vocabulary."""
    model = translator.model
    return {
        "model": {
            "path": str(path),
            "checkpoints": checkpoints,
            "parameters": sum(p.numel() for p in model.parameters()),
            "precision": translator.precision,
            "device": str(translator.device),
            "config": {
                "model": asdict(translator.config.model),
                "decode": asdict(translator.config.decode),
            },
        },
        "vocabulary": {
            "source": translator.src_tok.vocab_size,
            "target": translator.tgt_tok.vocab_size,
            "joint": translator.src_tok.model_bytes == translator.tgt_tok.model_bytes,
        },
    }


def serve(
    translator: Translator, about: dict[str, Any], settings: ServeSettings, sock: socket.socket
) -> None:
    """Serve `translator` on the bound `sock` until SIGTERM or SIGINT; returns after shutdown.

    Args:
        translator: the loaded model.
        about: what /info says about it (see `describe`).
        settings: the ServeSettings.
        sock: a bound socket (see `listen`).
    """
    import uvicorn

    from nmt_cli.serving.api import build_app

    app = build_app(translator, settings, about)
    config = uvicorn.Config(
        app,
        log_config=None,  # uvicorn's messages go through nmt's console handler
        access_log=False,
        timeout_graceful_shutdown=None,  # wait for every in-flight request
    )
    server = uvicorn.Server(config)
    host, port = sock.getsockname()[:2]
    where = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    log.info("serving on %s (API docs: %s/docs); Ctrl-C stops", where, where)
    # uvicorn raises the signal it stopped on again once it has shut down, to whatever handler
    # was there before it: these take it, so a clean shutdown ends with status 0.
    previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    stats = app.state.batcher.stats
    log.info(
        "stopped: %s requests answered, %s sentences in %s batches",
        f"{stats.requests:,}",
        f"{stats.sentences:,}",
        f"{stats.batches:,}",
    )


def _stopped(signum: int, frame: object) -> None:
    """The signal uvicorn re-raises after its graceful shutdown: nothing more to do."""
