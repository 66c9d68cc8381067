"""glibc malloc settings for CPU runs: keep large buffers mapped and on transparent huge pages.

Why: XLA:CPU and PyTorch allocate every large intermediate (a 16 x 12 x 256 x 256 attention score tensor is 50 MB)
with `malloc`, and glibc serves allocations above 32 MB with a fresh `mmap` that is unmapped on `free`. Each step
then page-faults all of that memory again in 4 KiB pages: timing 5 forward and 5 forward+backward passes of
DistilBERT (batch 16, 256 tokens) took 7.8 million page faults, and the CPU train step ran ~30% slower.
`glibc.malloc.hugetlb=1` backs those mappings with transparent huge pages (machines whose THP mode is `madvise`,
the common default) and the two thresholds keep freed memory for the next step.

glibc reads `GLIBC_TUNABLES` only at process start, so `reexec_with_tuning` restarts the current command (same
PID, same argv) with it set. Opt out with `EXIF_JAX_MALLOC_TUNING=0`; a `GLIBC_TUNABLES` you set yourself is left
alone.
"""
from __future__ import annotations

import os
import platform
import sys

TUNABLES = "glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296"
OPT_OUT = "EXIF_JAX_MALLOC_TUNING"


def wanted(environ=None) -> bool:
    environ = os.environ if environ is None else environ
    return (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
            and "GLIBC_TUNABLES" not in environ and environ.get(OPT_OUT, "1") != "0")


def reexec_with_tuning(argv: list[str]) -> None:
    """Replace this process by `python *argv` with the malloc settings, when they are wanted; else return."""
    if not wanted():
        return
    env = dict(os.environ, GLIBC_TUNABLES=TUNABLES)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv], env)
