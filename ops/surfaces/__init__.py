"""The surfaces generated from the operation contracts: the aiohttp application and its
route table (REST, SSE, MCP, OpenAPI), the Python client and the CLI."""

__all__ = []  # type: list[str]
