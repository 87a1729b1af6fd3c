"""What every bench prints about where it ran: package versions and the CPU."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["ver", "cpu_model"]


def ver(pkg: str) -> str:
    """The installed version of ``pkg``, or ``-``."""
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "-"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo), or what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"
