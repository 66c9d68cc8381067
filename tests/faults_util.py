"""Helpers of the fault-injection suite (`tests/test_faults*.py`): run `exif-jax` in a subprocess, check that a
fault gives one line naming the file or key with the right exit code and no traceback, and checksum what must not
be lost. Every fault a test tries is recorded (`FAULTS`) so docs/FAULTS.md can be checked against the suite.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
PHOTOS = REPO / "exif_jax" / "assets" / "quickstart" / "photos"
PROG_LINE = re.compile(r"^exif-jax\b")
# Lines other libraries print that are not ours (JAX's CUDA probe, absl's preamble).
NOISE = ("WARNING: All log messages before absl", "cudart_stub", "Could not find cuda drivers")


def env(cache: pathlib.Path | None = None, **extra) -> dict:
    e = dict(os.environ)
    e.update(PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2",
             XLA_FLAGS="--xla_force_host_platform_device_count=1 --xla_backend_optimization_level=0",
             EXIF_JAX_TRACEBACK="0")
    if cache is not None:
        e.update(JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    e.update({k: str(v) for k, v in extra.items()})
    return e


def cmd(*args) -> list[str]:
    return [sys.executable, "-m", "exif_jax", *map(str, args)]


def run(*args, env_=None, timeout=240, cwd=None, preexec_fn=None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd(*args), env=env_ or env(), cwd=cwd or REPO, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=preexec_fn)


def meaningful(text: str) -> list[str]:
    return [l for l in text.splitlines() if l.strip() and not any(n in l for n in NOISE)]


def our_lines(r) -> list[str]:
    """Lines our commands print about problems (prefixed `exif-jax ...:`) on stderr."""
    return [l for l in meaningful(r.stderr) if PROG_LINE.match(l)]


def assert_no_traceback(r) -> None:
    both = r.stdout + r.stderr
    assert "Traceback" not in both and "internal error" not in both, both[-3000:]


def assert_fault(r, code: int, *needles: str, lines: int = 1) -> str:
    """Exit `code`, no traceback, exactly `lines` message line(s) of ours, containing every needle."""
    assert_no_traceback(r)
    assert r.returncode == code, (r.returncode, r.stdout[-1500:], r.stderr[-1500:])
    msgs = our_lines(r)
    assert len(msgs) == lines, msgs or r.stderr[-1500:]
    for n in needles:  # the error itself is the last line (earlier ones: e.g. "checkpoint N is damaged; trying M")
        assert n in msgs[-1] or any(n in m for m in msgs), (n, msgs)
    return msgs[-1]


def same_safetensors(a: pathlib.Path, b: pathlib.Path) -> bool:
    """Same arrays and metadata (the byte layout of the header may differ between writes)."""
    import numpy as np
    from safetensors import safe_open

    with safe_open(str(a), "np") as fa, safe_open(str(b), "np") as fb:
        return (fa.metadata() == fb.metadata() and sorted(fa.keys()) == sorted(fb.keys())
                and all(np.array_equal(fa.get_tensor(k), fb.get_tensor(k)) for k in fa.keys()))


def tree_sums(root: pathlib.Path) -> dict[str, str]:
    """sha256 of every file under `root` (relative paths)."""
    root = pathlib.Path(root)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def file_sum(path: pathlib.Path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def steps_of(workdir: pathlib.Path) -> list[int]:
    d = pathlib.Path(workdir) / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.is_dir() and p.name.isdigit()) if d.is_dir() else []


def workdir_sums(workdir: pathlib.Path) -> dict[str, str]:
    """What a fault must not change in a workdir: checkpoints, config.json, metrics.jsonl."""
    w = pathlib.Path(workdir)
    out = {f"checkpoints/{k}": v for k, v in tree_sums(w / "checkpoints").items()}
    for name in ("config.json", "metrics.jsonl"):
        if (w / name).is_file():
            out[name] = file_sum(w / name)
    return out
