"""Streamable HTTP: loopback, a foreign Host header refused, a bearer token enforced when set."""

from __future__ import annotations

import os
import subprocess
import sys

import http.client
import json
from urllib.parse import urlparse
import pytest

from tests.mcp_helpers import ROOT, http_server

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


class Reply:
    def __init__(self, status: int, text: str) -> None:
        self.status_code, self.text = status, text


def post(url: str, body: dict, headers: dict[str, str]) -> Reply:
    """One POST with exactly these headers (http.client lets a test forge the Host header)."""
    parts = urlparse(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("POST", parts.path, body=json.dumps(body), headers=headers)
        response = conn.getresponse()
        return Reply(response.status, response.read().decode())
    finally:
        conn.close()


def test_http_serves_and_refuses_foreign_host():
    with http_server() as (url, _):
        ok = post(url, INIT, HEADERS)
        assert ok.status_code == 200 and "knowledge-distillation" in ok.text
        evil = post(url, INIT, {**HEADERS, "Host": "evil.example.com"})
        assert evil.status_code == 421


def test_http_token_required_when_set():
    with http_server("--token-env", "KD_TEST_TOKEN", env={"KD_TEST_TOKEN": "s3cret"}) as (url, _):
        assert post(url, INIT, HEADERS).status_code == 401
        assert post(url, INIT, {**HEADERS, "Authorization": "Bearer wrong"}).status_code == 401
        good = post(url, INIT, {**HEADERS, "Authorization": "Bearer s3cret"})
        assert good.status_code == 200
        # the scheme is case-insensitive (RFC 7235); another scheme, or the token alone, is not a bearer token
        assert post(url, INIT, {**HEADERS, "Authorization": "bearer s3cret"}).status_code == 200
        for header in ("Basic s3cret", "s3cret", "Bearers3cret", "Bearer  s3cret"):
            assert post(url, INIT, {**HEADERS, "Authorization": header}).status_code == 401, header


def test_token_env_must_be_set():
    proc = subprocess.run([sys.executable, "-m", "mcp_server", "--transport", "http", "--token-env", "KD_UNSET_VAR_X"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30, env={k: v for k, v in os.environ.items() if k != "KD_UNSET_VAR_X"})
    assert proc.returncode == 2 and "KD_UNSET_VAR_X" in proc.stderr


@pytest.mark.parametrize("flag", ["--transport", "--log-level"])
def test_bad_server_flags_exit_cleanly(flag):
    proc = subprocess.run([sys.executable, "-m", "mcp_server", flag, "bogus"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
