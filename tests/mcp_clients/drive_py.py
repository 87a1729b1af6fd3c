"""Drive a real `lattice serve` through the official Python MCP SDK (1.x or 2.x, whichever imports); one JSON report.

    python drive_py.py URL [MODE]     MODE (2.x only): legacy | auto | 2026-07-28

The calls are those of drive.mjs. Both SDK lines validate each structuredContent against the tool's outputSchema.
"""

from __future__ import annotations

import asyncio
import json
import sys
from importlib.metadata import version


async def calls(session) -> dict:
    out: dict = {}
    out["tools"] = [t.name for t in (await session.list_tools()).tools]
    agent = f"A-py{version('mcp')}-{sys.argv[2] if len(sys.argv) > 2 else 'legacy'}"
    for key, name, args in (("create", "agent_create", {"agentId": agent, "config": {"model": {"provider": "echo"}}}),
                            ("request", "agent_request", {"agentId": agent, "input": "hello", "wait": True}),
                            ("failed", "agent_info", {"agentId": "Nobody"}),
                            ("invalid", "agent_info", {"agentId": 7})):
        try:
            r = await session.call_tool(name, args)
            sc = getattr(r, "structured_content", None) if hasattr(r, "structured_content") else r.structuredContent
            err = getattr(r, "is_error", None) if hasattr(r, "is_error") else r.isError
            out[key] = {"isError": bool(err), "structuredContent": sc,
                        "text": r.content[0].text if r.content and r.content[0].type == "text" else None}
        except Exception as e:  # a client-side validation failure, or a protocol error
            out[key] = {"thrown": f"{type(e).__name__}: {e}"}
    return out


async def main() -> dict:
    url = sys.argv[1]
    report: dict = {"sdk": version("mcp")}
    if version("mcp").startswith("1."):
        from mcp import ClientSession
        from mcp.client.streamable_http import streamablehttp_client
        async with streamablehttp_client(url) as (read, write, _), ClientSession(read, write) as session:
            init = await session.initialize()
            report.update(protocolVersion=init.protocolVersion, server=init.serverInfo.name, **await calls(session))
    else:
        from mcp.client.client import Client
        mode = sys.argv[2] if len(sys.argv) > 2 else "legacy"
        async with Client(url, mode=mode) as client:
            report.update(protocolVersion=client.protocol_version,
                          server=client.server_info.name if client.server_info else None, **await calls(client))
    return report


if __name__ == "__main__":
    try:
        print(json.dumps(asyncio.run(main())))
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
