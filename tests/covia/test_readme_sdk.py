"""The README's "Using the Covia SDK" example, run as written against a real `lattice serve` (a fresh store), in a
fresh interpreter: each ``print`` line must print what its ``# ...`` comment says."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve import free_port, serve

ROOT = Path(__file__).resolve().parents[2]
HEADING = "## Using the Covia SDK"


def example() -> str:
    """The section's Python block."""
    section = (ROOT / "README.md").read_text().split(HEADING, 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def expected_output(code: str) -> list[str]:
    """What the block says it prints: the comment of each ``print(...)`` line, in order."""
    return [line.split("  # ", 1)[1].strip() for line in code.splitlines()
            if line.strip().startswith("print(") and "  # " in line]


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = serve(port, "--data", str(tmp_path / "data"))
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    out, _ = proc.communicate(timeout=15)
    assert b"Traceback" not in out, out.decode()


def test_the_covia_sdk_example_runs_as_written(url: str, tmp_path: Path) -> None:
    code = example()
    assert 'Grid.connect("http://127.0.0.1:7770")' in code
    expected = expected_output(code)
    assert len(expected) == 7, expected
    p = subprocess.run([sys.executable, "-c", code.replace("http://127.0.0.1:7770", url)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == expected, p.stdout
