import platform

import pytest
import torch

from nmt_cli.runtime import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_accepts_the_settings_and_tensors_still_work() -> None:
    assert keep_freed_memory() is True
    big = torch.ones(8 * 2**20 // 4)  # above the default mmap threshold, below ours
    del big
    again = torch.full((8 * 2**20 // 4,), 2.0)
    assert float(again.sum()) == 2.0 * again.numel()
