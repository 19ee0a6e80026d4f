"""Operating-system errors of the real command: one line naming the path and the reason, exit
code 1, never a traceback (issue 22)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import nmt

pytestmark = pytest.mark.e2e


def assert_one_line(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"nmt: error: {expected}"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_a_full_disk_on_stdout_and_on_the_output_file(run_dir: Path) -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "nmt_cli", "translate", str(run_dir), "--beam", "1"],
            input="a b c\n" * 3000, stdout=full, stderr=subprocess.PIPE, text=True, timeout=300,
        )  # fmt: skip
    assert_one_line(result, "stdout: cannot write (No space left on device)")
    result = nmt("translate", str(run_dir), "-o", "/dev/full", input="a b\n", check=False)
    assert_one_line(result, "/dev/full: cannot write (No space left on device)")


def test_folders_and_missing_paths(run_dir: Path, tmp_path: Path) -> None:
    result = nmt("translate", str(run_dir), "-i", str(tmp_path), check=False)
    assert_one_line(result, f"{tmp_path}: cannot read (Is a directory)")
    missing = tmp_path / "no" / "out.txt"
    result = nmt("translate", str(run_dir), "-o", str(missing), input="a\n", check=False)
    assert_one_line(result, f"{missing}: cannot write (No such file or directory)")
