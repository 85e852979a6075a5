"""Streamable HTTP: loopback by default, DNS-rebinding protection on, optional bearer token."""

from __future__ import annotations

import hmac
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mcp.server import Server
from mcp.server.transport_security import TransportSecuritySettings

if TYPE_CHECKING:
    import uvicorn


class BearerTokenMiddleware:
    """Refuse (401) every HTTP request that does not carry `Authorization: Bearer <token>`."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = token.encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scheme, _, given = dict(scope.get("headers") or []).get(b"authorization", b"").partition(b" ")
            # the scheme is case-insensitive (RFC 7235: 'bearer' is 'Bearer'); the token is compared in constant time
            if scheme.lower() != b"bearer" or not hmac.compare_digest(given, self.expected):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
                    }
                )
                await send({"type": "http.response.body", "body": b'{"error": "missing or wrong bearer token"}'})
                return
        await self.app(scope, receive, send)


def build_http_app(
    server: Server, host: str, port: int, token: str | None, extra_hosts: list[str] | None = None
) -> Any:
    """The Starlette app: only Host headers naming this server are accepted."""
    # an IPv6 literal travels in the Host header in brackets: [::1]:8765
    named = f"[{host}]" if ":" in host and not host.startswith("[") else host
    hosts = [
        f"127.0.0.1:{port}",
        f"localhost:{port}",
        "127.0.0.1",
        "localhost",
        f"{named}:{port}",
        named,
        *(extra_hosts or []),
    ]
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[f"http://{h}" for h in hosts],
    )
    app = server.streamable_http_app(transport_security=security, host=host)
    return BearerTokenMiddleware(app, token) if token else app


def serve_http(server: Server, host: str, port: int, token: str | None, extra_hosts: list[str] | None = None) -> None:
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"kd-mcp: warning: serving on {host}, reachable beyond this machine", file=sys.stderr)
    config = uvicorn.Config(
        build_http_app(server, host, port, token, extra_hosts), host=host, port=port, log_level="warning"
    )
    _keeping_sigterm()(config).run()


def _keeping_sigterm() -> type[uvicorn.Server]:
    """uvicorn's server, leaving SIGTERM to the handler installed before it: uvicorn's own waits for open connections
    to close (an MCP client's event stream never does), the server's kills workers, removes staging folders and
    exits at once."""
    import contextlib
    import signal
    import threading

    import uvicorn

    class KeepSigterm(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            ours = signal.getsignal(signal.SIGTERM)
            with super().capture_signals():
                if threading.current_thread() is threading.main_thread() and callable(ours):
                    signal.signal(signal.SIGTERM, ours)
                yield

    return KeepSigterm
