"""An API key named by apiKeyEnv never reaches the store, a job, a timeline or the server's log."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.serve import free_port, serve

SECRET = "sk-live-9f8e7d6c5b4a39281706-do-not-leak"


async def scenario(tmp: Path) -> str:
    seen = []

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(request.headers.get("Authorization"))
        if len(seen) == 2:  # an error reply that echoes the credential back
            return web.json_response({"error": {"message": f"bad key {request.headers['Authorization']}"}}, status=401)
        last = body["messages"][-1]
        if last["role"] == "user":
            return web.json_response({"choices": [{"message": {"content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "complete_task",
                                                               "arguments": json.dumps({"output": "done"})}}]}}]})
        return web.json_response({"choices": [{"message": {"content": "ok"}}]})
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    llm_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", llm_port).start()

    port = free_port()
    log = tmp / "server.log"
    env = {**os.environ, "LEAKY_API_KEY": SECRET}
    with open(log, "wb") as out:
        proc = serve(port, "--data", str(tmp / "data"), "--log-level", "debug", output=out, env=env)
        try:
            url = f"http://127.0.0.1:{port}/api/v1/invoke"
            model = {"provider": "openai", "model": "m", "baseUrl": f"http://127.0.0.1:{llm_port}/v1",
                     "apiKeyEnv": "LEAKY_API_KEY", "maxRetries": 0}
            async with aiohttp.ClientSession() as s:
                async def call(op: str, **inp) -> dict:
                    async with s.post(url, json={"operation": op, "input": inp}) as r:
                        return await r.json()
                await call("agent:create", agentId="A", config={"model": model})
                ok = await call("agent:request", agentId="A", input="go", wait=True)
                assert ok["status"] == "COMPLETE", ok
                failed = await call("agent:request", agentId="A", input="again", wait=True)  # the 401 echoing the key
                info = await call("agent:info", agentId="A")
                assert info["output"]["status"] == "SUSPENDED" and "[REDACTED]" in info["output"]["error"]
                dump = json.dumps([ok, failed, info, await call("covia:read", path="g/A", maxSize=1 << 30),
                                   await call("covia:read", path="j", maxSize=1 << 30),
                                   await call("agent:history", agentId="A")])
                assert SECRET not in dump
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            await runner.cleanup()
    assert seen[0] == f"Bearer {SECRET}"  # it was really used
    return log.read_text()


def test_api_key_never_stored_or_logged(tmp_path: Path) -> None:
    log = asyncio.run(scenario(tmp_path))
    assert "POST /api/v1/invoke" in log  # the log is real
    assert SECRET not in log
    for f in (tmp_path / "data").rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f


async def key_theft_attempt(tmp: Path) -> tuple[list, list, dict, dict]:
    """A token holder tries to have the server send the operator's key to a listener of its own."""
    theirs, declared = [], []

    def listener(seen: list):
        async def chat(request: web.Request) -> web.Response:
            seen.append(request.headers.get("Authorization"))
            return web.json_response({"choices": [{"message": {"content": "ok"}}]})
        return chat
    runners = []
    ports = []
    for seen in (theirs, declared):
        app = web.Application()
        app.router.add_post("/v1/chat/completions", listener(seen))
        runner = web.AppRunner(app)
        await runner.setup()
        ports.append(free_port())
        await web.TCPSite(runner, "127.0.0.1", ports[-1]).start()
        runners.append(runner)
    tokens = tmp / "tokens.json"
    tokens.write_text(json.dumps({"mallory-token-0123456789": "mallory"}))
    models = tmp / "models.json"
    models.write_text(json.dumps({"house": {"baseUrl": f"http://127.0.0.1:{ports[1]}/v1",
                                            "apiKeyEnv": "HOUSE_API_KEY"}}))
    env = {**os.environ, "OPENAI_API_KEY": SECRET, "HOUSE_API_KEY": "house-key-0123456789"}
    port = free_port()
    proc = serve(port, "--data", str(tmp / "data"), "--tokens", str(tokens), "--models", str(models), env=env)
    try:
        headers = {"Authorization": "Bearer mallory-token-0123456789"}
        async with aiohttp.ClientSession(headers=headers) as s:
            async def call(op: str, **inp) -> dict:
                async with s.post(f"http://127.0.0.1:{port}/api/v1/invoke", json={"operation": op, "input": inp}) as r:
                    return await r.json()
            stolen = await call("agent:create", agentId="M", config={"model": {
                "provider": "openai", "model": "m", "baseUrl": f"http://127.0.0.1:{ports[0]}/v1",
                "apiKeyEnv": "OPENAI_API_KEY", "maxRetries": 0}})
            await call("agent:create", agentId="H", config={"model": {"provider": "openai", "model": "m",
                                                                       "connection": "house"}})
            ok = await call("agent:request", agentId="H", input="hi", wait=True)
    finally:
        proc.terminate()
        proc.wait(10)
        for r in runners:
            await r.cleanup()
    return theirs, declared, stolen, ok


def test_a_token_holder_cannot_route_the_operators_key(tmp_path: Path) -> None:
    theirs, declared, stolen, ok = asyncio.run(key_theft_attempt(tmp_path))
    assert stolen["status"] == "FAILED" and stolen["errorCode"] == "forbidden", stolen
    assert "connection" in stolen["hint"] and "house" in stolen["hint"]
    assert theirs == []  # the caller's listener never heard from the server
    assert ok["status"] == "COMPLETE", ok  # a declared connection works, with its own key only
    assert declared == ["Bearer house-key-0123456789"]
