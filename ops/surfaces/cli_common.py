"""What the ``lattice`` commands that talk to a server share: ``--url``, calling an operation, printing a job.

A rejection (400...) and an unreachable server exit 2, a job that did not complete exits 1 (see
:mod:`ops.surfaces.cli`). Where a command's options stand for an operation's fields (``--other`` for
``otherAgentId``), the server's messages are shown with the option names (:func:`flags`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from typing import Any, Mapping

import click

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "DEFAULT_URL", "url_option", "dump", "call", "ok", "flags", "client_run",
           "Unreachable"]

DEFAULT_PORT = 7770
DEFAULT_HOST = "127.0.0.1"
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"

url_option = click.option("--url", envvar="LATTICE_URL", default=DEFAULT_URL, show_default=True,
                          help="Base URL of a running `lattice serve` (env LATTICE_URL). A bearer token for a "
                               "server run with --tokens is read from env LATTICE_TOKEN.")


def dump(value: Any) -> None:
    """Print a value as indented JSON."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


class Unreachable(click.ClickException):
    """The server could not be reached (exit 2, like a rejection)."""

    exit_code = 2


def flags(text: str, names: Mapping[str, str] | None) -> str:
    """``text`` (a server's message or hint) with each field the command has an option for named as the option.

    >>> flags("give `from` (a seq or id), or `otherAgentId` - at `$.input.from`", {"from": "--from",
    ...                                                                            "otherAgentId": "--other"})
    'give `--from` (a seq or id), or `--other` - at `--from`'
    """
    for field, option in (names or {}).items():
        text = re.sub(rf"`(?:\$\.input\.)?{re.escape(field)}`", f"`{option}`", text)
        text = re.sub(rf"\$\.input\.{re.escape(field)}\b", option, text)
    return text


def _say_error(code: Any, message: Any, hint: Any, names: Mapping[str, str] | None, status: Any = None) -> None:
    head = f"{status} {code}" if status is not None else f"{code}"
    click.echo(f"{head}: {flags(str(message), names)}", err=True)
    if hint:
        click.echo(f"hint: {flags(str(hint), names)}", err=True)


def client_run(url: str, work: Any, names: Mapping[str, str] | None = None) -> Any:
    """Run ``work(client)`` (a coroutine function) with a client of ``url``; exit 2 when rejected or unreachable."""
    import aiohttp

    from .client import Client, Rejected

    async def run() -> Any:
        async with Client(url, token=os.environ.get("LATTICE_TOKEN") or None) as client:
            return await work(client)
    try:
        return asyncio.run(run())
    except aiohttp.ClientError as e:
        raise Unreachable(f"cannot reach {url}: {e} (is `lattice serve` running?)") from None
    except Rejected as e:
        _say_error(e.code, e.message, e.hint, names, e.status)
        sys.exit(2)


def call(url: str, operation: str, input: Any, names: Mapping[str, str] | None = None) -> dict:
    """Invoke ``operation`` and return the job, as the server sent it (exit 2 when rejected or unreachable)."""
    return client_run(url, lambda client: client.invoke_json(operation, input), names)


def ok(job: dict, names: Mapping[str, str] | None = None) -> Any:
    """The job's output; exit 1 with its error when it did not complete."""
    status = job.get("status")
    if status != "COMPLETE":
        _say_error(job.get("errorCode") or str(status).lower(), job.get("error") or f"the job is {status}",
                   job.get("hint"), names)
        sys.exit(1)
    return job["output"]
