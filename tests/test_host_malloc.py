"""`exif_jax.host_malloc`: commands restart once with glibc malloc tuned, keep their argv, and honour opt-outs."""
import os
import subprocess
import sys

import pytest

from exif_jax import host_malloc

PRINT_ENV = "import os, sys; print(os.environ.get('GLIBC_TUNABLES')); print(sys.argv[1:])"
REEXEC = ("import sys; from exif_jax import host_malloc; "
          f"host_malloc.reexec_with_tuning(['-c', {PRINT_ENV!r}, *sys.argv[1:]]); print('not restarted')")

pytestmark = pytest.mark.skipif(not host_malloc.wanted({}), reason="needs Linux with glibc")


def _python(code, *args, env_extra=None):
    """`python -c code args` with neither GLIBC_TUNABLES nor the opt-out set, plus `env_extra`."""
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", host_malloc.OPT_OUT)}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120)


def _run(env_extra, *args):
    out = _python(REEXEC, *args, env_extra=env_extra)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_restarts_with_tunables_and_same_arguments():
    assert _run({}, "--workdir", "a b") == [host_malloc.TUNABLES, "['--workdir', 'a b']"]


def test_opt_out_and_user_setting_are_respected():
    assert _run({host_malloc.OPT_OUT: "0"}) == ["not restarted"]
    assert _run({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}) == ["not restarted"]


def test_cli_restarts_model_commands():
    probe = ("import os, sys; from exif_jax import cli; "
             "cli.COMMANDS['probe'] = ''; cli.HEAVY = ('probe',); import types; "
             "sys.modules['exif_jax.commands.probe'] = types.SimpleNamespace("
             "main=lambda argv: print(os.environ.get('GLIBC_TUNABLES'), argv)); sys.exit(cli.main())")
    # The restarted process is `python -m exif_jax.cli`, which does not know the probe command: its error shows
    # that the restart happened.
    out = _python(probe, "probe", "x")
    assert "unknown command 'probe'" in out.stderr
