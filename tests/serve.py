"""Starting a real `lattice serve` process for the tests that need one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

__all__ = ["BIN", "free_port", "serve", "cli_env", "lattice"]

#: where the project's console scripts (``lattice``) are installed
BIN = Path(sys.executable).parent


def lattice(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``lattice ARGS...`` to the end; its exit code, stdout and stderr (text)."""
    return subprocess.run([str(BIN / "lattice"), *args], capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_env(port: int, **extra: str) -> dict[str, str]:
    """The environment for ``lattice`` commands against a server on ``port``: ``LATTICE_URL`` set, ``BIN`` first
    on ``PATH``, and ``extra`` variables (``LATTICE_TOKEN=...``)."""
    return {**os.environ, "LATTICE_URL": f"http://127.0.0.1:{port}", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            **extra}


def serve(port: int, *args: str, output: IO[bytes] | int = subprocess.PIPE, env: dict[str, str] | None = None,
          timeout: float = 20) -> subprocess.Popen:
    """Start ``lattice serve --port PORT ARGS...`` and return once it accepts connections.

    Raises:
        AssertionError: the process exited, or did not listen within ``timeout`` seconds.
    """
    proc = subprocess.Popen([str(BIN / "lattice"), "serve", "--port", str(port), *args], stdout=output,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                out: Any = proc.stdout.read().decode() if proc.stdout else ""
                raise AssertionError(f"lattice serve exited with {proc.returncode}: {out}")
            assert time.monotonic() < deadline, "lattice serve did not start"
            time.sleep(0.02)
