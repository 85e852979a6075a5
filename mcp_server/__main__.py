"""`kd-mcp` / `python -m mcp_server`: stdio by default, or streamable HTTP on 127.0.0.1."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kd-mcp", description="knowledge-distillation MCP server")
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="HTTP bind address (default 127.0.0.1; another interface must be named here)",
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--token-env", default=None, metavar="VAR", help="Require 'Authorization: Bearer $VAR' on every HTTP request"
    )
    parser.add_argument(
        "--allowed-host", action="append", default=[], help="Extra Host header accepted over HTTP (repeatable)"
    )
    parser.add_argument(
        "--data-root",
        default=None,
        help="Folder user data and teacher paths must lie in (default: $KD_DATA_ROOT or the working directory)",
    )
    parser.add_argument(
        "--output-root",
        default=None,
        help="Folder run outputs are written under (default: $KD_OUTPUT_ROOT or the working directory)",
    )
    parser.add_argument(
        "--max-distills", default=None, help="Distillations allowed at once, >= 1 (default: $KD_MAX_DISTILLS or 1)"
    )
    parser.add_argument(
        "--max-distill-memory-mb",
        default=None,
        help=(
            "Memory each distillation worker may map beyond its libraries, in MiB (default: $KD_MAX_DISTILL_MEMORY_MB "
            "or 3072)"
        ),
    )
    parser.add_argument(
        "--allow-torchscript",
        action="store_true",
        help=(
            "Run TorchScript teachers (programs: they can read and write files) inside the killable worker; off by "
            "default"
        ),
    )
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """Kill the running workers and remove their staging folders, then exit at once (unwinding waits on stdin)."""
    from skill.distill.jobs import stop_all

    stop_all()
    os._exit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # stdout is the protocol on stdio: every log line goes to stderr.
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    from mcp_server.server import build_server, serve_stdio
    from skill.distill.jobs import limits_from_env

    try:
        limits = limits_from_env(
            args.data_root, args.output_root, args.max_distills, args.max_distill_memory_mb, args.allow_torchscript
        )
    except ValueError as exc:
        print(f"kd-mcp: error: {exc}", file=sys.stderr)
        return 2
    server = build_server(limits)
    # the default action left a `.partial` staging folder in the output root
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if args.transport == "stdio":
        import anyio

        anyio.run(serve_stdio, server)
        return 0
    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            print(f"kd-mcp: error: --token-env {args.token_env}: the variable is unset or empty", file=sys.stderr)
            return 2
    from mcp_server.http import serve_http

    serve_http(server, host=args.host, port=args.port, token=token, extra_hosts=args.allowed_host)
    return 0


if __name__ == "__main__":
    sys.exit(main())
