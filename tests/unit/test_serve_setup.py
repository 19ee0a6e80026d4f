"""`nmt serve` before it serves: the optional web stack, its settings, its socket."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from nmt_cli.errors import ConfigError
from nmt_cli.serving.server import listen, require_web_stack


def test_other_commands_never_import_the_web_stack() -> None:
    code = "import sys, nmt_cli.cli; print(sorted({'fastapi', 'uvicorn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_without_the_serve_extra_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)  # importing it now raises ImportError
    with pytest.raises(ConfigError, match=r"fastapi is not installed.*'nmt-cli\[serve\]'"):
        require_web_stack()


def test_a_taken_port_is_refused_in_one_line() -> None:
    taken = listen("127.0.0.1", 0)
    port = taken.getsockname()[1]
    try:
        with pytest.raises(ConfigError, match=rf"cannot listen on 127.0.0.1:{port}: "):
            listen("127.0.0.1", port)
    finally:
        taken.close()
    free = listen("127.0.0.1", 0)
    assert free.family == socket.AF_INET and free.getsockname()[1] > 0
    with socket.create_connection(free.getsockname(), timeout=5):  # listening already
        pass
    free.close()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_batch": 0}, "--max-batch must be positive"),
        ({"beam": 65}, "--beam must be at most 64"),
        ({"max_wait_ms": -1}, "--max-wait-ms must be 0 or more"),
        ({"max_lines": 2000}, r"--max-lines \(2000\) must not exceed --max-queue \(1024\)"),
        ({"timeout_s": 0}, "--timeout must be positive"),
    ],
)
def test_settings_out_of_range_name_their_option(changes: dict, message: str) -> None:
    api = pytest.importorskip("nmt_cli.serving.api")
    with pytest.raises(ConfigError, match=message):
        api.ServeSettings(**{"beam": 5, **changes})
