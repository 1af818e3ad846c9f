"""The glibc mmap threshold that keeps resident memory flat (ser_fcn/utils/allocator.py)."""

import os
import platform
import subprocess
import sys

import pytest

from helpers import REPO

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="a glibc setting")

# The growth pattern of a training run in miniature: a 16 MiB tensor freed (glibc raises its
# mmap threshold to 16 MiB), then 20 tensors of 8 MiB of which all but the newest are freed.
FRAGMENT = """
import numpy as np
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:")) / 1024
big = np.ones(16 << 17); del big
before = rss()
blocks = [np.ones(1 << 20) for _ in range(20)]
newest = blocks[-1]; del blocks
print(rss() - before)
"""


def _retained_mib(configure: bool) -> float:
    setup = "from ser_fcn.utils.allocator import configure_allocator; assert configure_allocator()\n" if configure else ""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    out = subprocess.run([sys.executable, "-c", setup + FRAGMENT], capture_output=True, text=True, cwd=REPO, env=env, check=True)
    return float(out.stdout.split()[-1])


def test_freed_tensors_go_back_to_the_system():
    default, fixed = _retained_mib(False), _retained_mib(True)
    assert default > 100  # glibc's raised threshold keeps the freed blocks on the heap
    assert fixed < 20  # only the live 8 MiB block stays resident


@pytest.mark.parametrize("user_env, expected", [(None, "True"), ("65536", "False")])
def test_the_entry_point_configures_it_unless_the_user_did(user_env, expected):
    code = ("import runpy, sys\nsys.argv = ['ser_fcn', 'manifest', '--help']\n"
            "try:\n    runpy.run_module('ser_fcn', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "from ser_fcn.utils import allocator\nprint(allocator.applied)")
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    if user_env:
        env["MALLOC_MMAP_THRESHOLD_"] = user_env
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, check=True)
    assert out.stdout.strip().splitlines()[-1] == expected
