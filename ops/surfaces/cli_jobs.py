"""The ``lattice`` commands about one job: ``job ID`` (print it, or wait for it) and ``cancel ID``.

A job id is what every invoke prints (``0x`` and 32 hex digits). Both print the job as the
server has it and exit 1 when it ended ``FAILED``, ``CANCELLED`` or ``TIMEOUT``, 2 when the
server refuses (an unknown job: 404) or cannot be reached.
"""

from __future__ import annotations

import sys
from typing import Any

import click
import msgspec

from .cli_common import client_run, dump, url_option

__all__ = ["job", "cancel"]

_UNFINISHED = ("FAILED", "CANCELLED", "TIMEOUT")


def _print(j: Any) -> None:
    out = msgspec.to_builtins(j)
    for extra in ("path", "hint", "agentId", "agent"):  # printed where the server sent them
        if out.get(extra) is None:
            out.pop(extra, None)
    dump(out)
    if out.get("status") in _UNFINISHED:
        sys.exit(1)


@click.command()
@click.argument("job_id", metavar="ID")
@click.option("--wait", "wait_ms", type=click.IntRange(0), default=None, metavar="MS",
              help="Wait until the job is finished, at most MS milliseconds (0: as long as it takes); then print "
                   "it as it is.")
@url_option
def job(job_id: str, wait_ms: int | None, url: str) -> None:
    """Print the job ID (as `GET /api/v1/jobs/ID`): its status, output or error.

    \b
    Example:
      lattice job 0x019a7c...           # now
      lattice job 0x019a7c... --wait 5000   # once finished, or after 5 s (milliseconds, as every wait)
    """
    async def work(client: Any) -> Any:
        if wait_ms is None:
            return await client.job(job_id)
        return await client.wait(job_id, None if wait_ms == 0 else wait_ms / 1000)
    _print(client_run(url, work, {"jobId": "ID"}))


@click.command()
@click.argument("job_id", metavar="ID")
@url_option
def cancel(job_id: str, url: str) -> None:
    """Cancel the job ID (a task or a trigger still waiting or running); print the job after cancelling.

    A job that had already finished is printed as it is.
    """
    async def work(client: Any) -> Any:
        return await client.cancel(job_id)
    _print(client_run(url, work, {"jobId": "ID"}))
