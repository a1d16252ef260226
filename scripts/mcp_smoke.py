"""A third-party MCP client (the Python `mcp` package) against hero_router's gateway.

Usage: python mcp_smoke.py BASE_URL SERVICE
Connects to BASE_URL/mcp/SERVICE and BASE_URL/mcp in both protocol revisions (the 2025-11-25
initialize handshake, "legacy", and 2026-07-28), lists the tools, follows the pagination,
calls a by-position tool (add), a by-name tool (echo) and a failing one (fail), and checks
every answer. SERVICE must be a hero_example_service with its rich spec. Prints one line per
check and exits non-zero on the first failure.
"""

import asyncio
import sys

from mcp import Client


def check(what, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + what + (f": {detail}" if detail and not ok else ""))
    if not ok:
        sys.exit(1)


async def all_tools(client):
    tools, cursor = [], None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.next_cursor
        if cursor is None:
            return tools


async def smoke(base, service, mode, expected_version):
    label = f"[{mode}]"
    async with Client(f"{base}/mcp/{service}", mode=mode) as client:
        check(f"{label} negotiated {expected_version}", client.protocol_version == expected_version,
              client.protocol_version)
        names = [t.name for t in await all_tools(client)]
        check(f"{label} /mcp/{service} lists echo, sleep_ms, add, fail",
              names == ["echo", "sleep_ms", "add", "fail"], names)
        r = await client.call_tool("add", {"b": 40, "a": 2})
        check(f"{label} add (by position) is 42", not r.is_error and r.structured_content == {"result": 42},
              r)
        r = await client.call_tool("echo", {"value": "hi"})
        check(f"{label} echo (by name) returns its params",
              not r.is_error and r.structured_content == {"result": {"value": "hi"}}, r)
        r = await client.call_tool("fail", {})
        text = " ".join(getattr(c, "text", "") for c in r.content)
        check(f"{label} fail is an isError result saying why", r.is_error and "requested failure" in text, r)
    async with Client(f"{base}/mcp", mode=mode) as client:
        names = [t.name for t in await all_tools(client)]
        check(f"{label} /mcp has {service}__add", f"{service}__add" in names, names)
        r = await client.call_tool(f"{service}__add", {"a": 1, "b": 2})
        check(f"{label} {service}__add is 3", not r.is_error and r.structured_content == {"result": 3}, r)


async def main():
    base, service = sys.argv[1].rstrip("/"), sys.argv[2]
    await smoke(base, service, "legacy", "2025-11-25")
    await smoke(base, service, "2026-07-28", "2026-07-28")
    await smoke(base, service, "auto", "2026-07-28")
    print("mcp smoke: all checks passed")


asyncio.run(main())
