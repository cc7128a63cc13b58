"""Server processes the tests start in their own process group (``start_new_session=True``):
stopping one with its children, and the real ``dagster-daemon`` over a workspace."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

BIN = Path(sys.executable).parent


def stop_group(
    process: subprocess.Popen, first: signal.Signals = signal.SIGINT, timeout: float = 20
) -> None:
    """``first`` to the process group (SIGINT: the daemon stops its code server and threads;
    SIGTERM: a web server shuts down), wait up to ``timeout`` seconds, then SIGKILL whatever is
    left and reap the process."""
    try:
        os.killpg(process.pid, first)
        process.wait(timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout)


@contextlib.contextmanager
def dagster_daemon(cwd: Path, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """``dagster-daemon run -w workspace.yaml`` in ``cwd`` (its own process group), its output
    in ``log``; stopped with :func:`stop_group` on exit."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            yield process
        finally:
            stop_group(process)
