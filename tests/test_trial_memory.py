"""A reused Ray worker hands each finished trial's freed memory back (issue 20): without it a
1M-row search grew every worker by ~100 MB a trial. The effect itself is measured by
benchmarks/large_data.py (the tree's peak RSS); these check the helper the trainable calls."""
from __future__ import annotations

import ctypes
import platform

import numpy as np
import pytest

from automl.search.trial import release_memory


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_release_memory_trims_the_heap_on_glibc():
    junk = [np.ones(1000 + i) for i in range(2000)]  # mid-size blocks from malloc's heap
    del junk
    assert release_memory() is True


def test_release_memory_is_a_quiet_no_op_without_glibc(monkeypatch):
    def no_libc(name, *args, **kwargs):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert release_memory() is False
