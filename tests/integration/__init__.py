"""Integration tests: real aiohttp servers on loopback ports, the real client, runner and CLI."""
