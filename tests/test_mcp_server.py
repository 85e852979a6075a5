"""The MCP server through the real SDK client: in memory for every tool, and over stdio."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client

from mcp_server.server import build_server
from tests.mcp_helpers import ROOT, stdio_params, text_of

ADVISORY = {
    "kd_route_request": ({"request": "Shrink my 800 MB BERT to fit a phone"}, {"verdict": "in_scope"}),
    "kd_recommend_method": (
        {"task_type": "classification", "task_similarity": 0.95, "teacher_params": 800, "student_params": 50},
        {"compression_ratio": 16.0},
    ),
    "kd_choose_alpha": ({"deployment_environment": "mobile"}, {"alpha": 0.7, "alpha_range": [0.6, 0.8], "branch": "size_first"}),
    "kd_score_distillation": (
        {"alpha": 0.7, "teacher_size": 800, "teacher_accuracy": 0.95, "student_size": 50, "student_accuracy": 0.912},
        {"ranking": None},
    ),
    "kd_diagnose_failure": (
        {"per_class_accuracy": {"a": 0.97, "rare": 0.5}, "class_support": {"a": 900, "rare": 12}},
        {"detected": ["accuracy_mirage"]},
    ),
    "kd_check_quality_gates": ({"alpha": 0.7, "alpha_reason": "phone", "distillation_score": 0.056}, {"passed": 1, "failed": 0, "unknown": 9}),
    # a run folder under the data root (the working directory), in the TRL recipe's generation_evidence.json shape
    "kd_release_check": ({"run_dir": "tests/data/generation_run"}, {"decision": "ship_with_conditions", "kind": "generation"}),
}
BAD = {
    "kd_route_request": ({"request": ""}, "request"),
    "kd_recommend_method": ({"task_type": "classification", "task_similarity": 1.5}, "task_similarity"),
    "kd_choose_alpha": ({"deployment_environment": "moon"}, "deployment_environment"),
    "kd_score_distillation": ({"alpha": 0.7, "teacher_size": 800, "teacher_accuracy": 95, "student_size": 5, "student_accuracy": 0.9}, "teacher_accuracy"),
    "kd_diagnose_failure": ({"labels": [0, 1], "student_probs": [[0.5, 0.5]]}, "student_probs"),
    "kd_check_quality_gates": ({"temperature": "hot"}, "temperature"),
    "kd_release_check": ({"run_dir": "/etc"}, "run_dir"),
}
ENVELOPE = {"rule_trace", "warnings", "missing_inputs", "next_steps", "delegations", "references"}


def run(coro_fn):
    return anyio.run(coro_fn)


def test_tools_list_has_schemas_annotations_descriptions():
    async def go():
        async with Client(build_server()) as client:
            return (await client.list_tools()).tools

    tools = {t.name: t for t in run(go)}
    assert set(ADVISORY) <= set(tools)
    for name in ADVISORY:
        tool = tools[name]
        assert tool.output_schema and tool.output_schema["type"] == "object"
        assert ENVELOPE <= set(tool.output_schema["properties"])
        assert tool.input_schema.get("additionalProperties") is False
        a = tool.annotations
        assert (a.read_only_hint, a.destructive_hint, a.idempotent_hint, a.open_world_hint) == (True, False, True, False)
        assert tool.title and len(tool.description) > 80 and "Use " in tool.description and "Not for" in tool.description


@pytest.mark.parametrize("name", sorted(ADVISORY))
def test_tool_structured_output(name):
    arguments, expected = ADVISORY[name]

    async def go():
        async with Client(build_server()) as client:
            return await client.call_tool(name, arguments)

    result = run(go)
    assert not result.is_error, text_of(result)
    data = result.structured_content
    assert ENVELOPE <= set(data)
    for key, value in expected.items():
        assert data[key] == value, key


def test_structured_values_match_the_library():
    async def go():
        async with Client(build_server()) as client:
            score = await client.call_tool("kd_score_distillation", ADVISORY["kd_score_distillation"][0])
            method = await client.call_tool("kd_recommend_method", ADVISORY["kd_recommend_method"][0])
            return score.structured_content, method.structured_content

    score, method = run(go)
    assert score["score"] == pytest.approx(0.05575) and score["size_term"] == pytest.approx(0.04375)
    assert method["method"]["id"] == "response" and method["method"]["hyperparameters"]["temperature_range"] == [3, 4]
    assert {w["id"] for w in method["warnings"]} == {"response_at_high_compression", "small_student_high_temperature"}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_a_clear_is_error(name):
    arguments, field = BAD[name]

    async def go():
        async with Client(build_server()) as client:
            bad = await client.call_tool(name, arguments)
            extra = await client.call_tool(name, {**ADVISORY[name][0], "surprise": 1})
            good = await client.call_tool(name, ADVISORY[name][0])
            return bad, extra, good

    bad, extra, good = run(go)
    assert bad.is_error and field in text_of(bad)
    assert "Error executing tool" not in text_of(bad) or field in text_of(bad)
    assert extra.is_error and "surprise" in text_of(extra)
    assert not good.is_error  # the server keeps serving


def test_unknown_tool_is_refused():
    async def go():
        async with Client(build_server()) as client:
            return await client.call_tool("kd_make_coffee", {})

    result = run(go)
    assert result.is_error and "kd_make_coffee" in text_of(result)


def test_resources_and_templates():
    async def go():
        async with Client(build_server()) as client:
            listed = await client.list_resources()
            templates = await client.list_resource_templates()
            skill = await client.read_resource("kd://skill")
            methods = await client.read_resource("kd://references/methods")
            alpha = await client.read_resource("kd://rules/alpha")
            errors = []
            for uri in ("kd://references/nope", "kd://rules/nope", "kd://references/..%2F..%2Fetc%2Fpasswd"):
                try:
                    await client.read_resource(uri)
                except Exception as exc:  # the SDK raises MCPError for a resource error
                    errors.append(str(exc))
            return listed, templates, skill, methods, alpha, errors

    listed, templates, skill, methods, alpha, errors = run(go)
    assert "kd://skill" in {str(r.uri) for r in listed.resources}
    assert {t.uri_template for t in templates.resource_templates} >= {"kd://references/{topic}", "kd://rules/{name}"}
    assert skill.contents[0].text.startswith("---\nname: knowledge-distillation-deep")
    assert "# " in methods.contents[0].text
    assert "size_first" in alpha.contents[0].text
    assert len(errors) == 3
    assert "known:" in errors[0] and "methods" in errors[0]
    assert "known:" in errors[1] and "alpha" in errors[1]


def test_plan_distillation_prompt():
    async def go():
        async with Client(build_server()) as client:
            prompts = await client.list_prompts()
            got = await client.get_prompt("plan_distillation", {"model_description": "800 MB BERT sentiment", "constraints": "50 MB"})
            return prompts, got

    prompts, got = run(go)
    assert "plan_distillation" in {p.name for p in prompts.prompts}
    text = got.messages[0].content.text
    order = [text.index(t) for t in ("kd_route_request", "kd_recommend_method", "kd_choose_alpha", "kd_run_quick_distill", "kd_diagnose_failure", "kd_check_quality_gates")]
    assert order == sorted(order) and "800 MB BERT" in text


def test_manifest_matches_the_models():
    """tools.json is what the pydantic models generate today (regenerate: python -m mcp_server.manifest --write)."""
    from mcp_server import manifest

    assert manifest.PATH.read_text() == manifest.render(manifest.generate())
    assert {e["name"] for e in manifest.load()} == set(ADVISORY) | {"kd_run_quick_distill", "kd_export_recipe"}


def test_json_string_arguments_are_decoded():
    """Some clients send objects as JSON strings; the tool decodes them before validating."""

    async def go():
        async with Client(build_server()) as client:
            return await client.call_tool("kd_diagnose_failure", {"per_class_accuracy": '{"a": 0.97, "rare": 0.5}'})

    result = run(go)
    assert not result.is_error and result.structured_content["detected"] == ["accuracy_mirage"]


def test_torch_is_not_imported_by_the_server_or_advice():
    code = (
        "import sys, anyio\n"
        "from mcp import Client\n"
        "import mcp_server.server as s\n"
        "server = s.build_server()\n"
        "assert 'torch' not in sys.modules, 'torch after import'\n"
        "assert 'skill.models' not in sys.modules and 'yaml' not in sys.modules, 'models built at start'\n"
        "async def go():\n"
        "    async with Client(server) as c:\n"
        "        await c.list_tools()\n"
        "        r = await c.call_tool('kd_recommend_method', {'task_type': 'classification'})\n"
        "        assert not r.is_error\n"
        "anyio.run(go)\n"
        "assert 'torch' not in sys.modules, 'torch after a call'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


def test_stdio_subprocess_end_to_end():
    async def go():
        async with Client(stdio_params()) as client:
            tools = await client.list_tools()
            alpha = await client.call_tool("kd_choose_alpha", {"deployment_environment": "edge", "application_domain": "medical"})
            bad = await client.call_tool("kd_choose_alpha", {"deployment_environment": 7})
            again = await client.call_tool("kd_route_request", {"request": "quantize to int8 with onnx"})
            return tools, alpha, bad, again

    tools, alpha, bad, again = run(go)
    assert {"kd_recommend_method", "kd_choose_alpha"} <= {t.name for t in tools.tools}
    assert alpha.structured_content["alpha"] == 0.7 and alpha.structured_content["warnings"][0]["id"] == "critical_domain_on_small_device"
    assert bad.is_error and "deployment_environment" in text_of(bad)
    assert again.structured_content["skill"] == "model-deployment-optimization"


def test_stdout_carries_only_protocol_messages():
    """Run the server over stdio by hand and check every stdout line is JSON-RPC."""
    import json

    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
    lines = [init, {"jsonrpc": "2.0", "method": "notifications/initialized"}, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
             {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "kd_choose_alpha", "arguments": {"deployment_environment": "x"}}}]
    proc = subprocess.Popen([sys.executable, "-m", "mcp_server", "--log-level", "DEBUG"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    out = []
    try:
        for message in lines:
            proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()
            if "id" in message:
                out.append(json.loads(proc.stdout.readline()))  # every stdout line must parse as JSON-RPC
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert [m.get("id") for m in out] == [1, 2, 3]
    assert all(m["jsonrpc"] == "2.0" for m in out)
    assert out[2]["result"]["isError"] is True
    assert proc.stdout.read().strip() == ""  # nothing else was printed
    proc.stdout.close()
    proc.stderr.close()


def _sdk_imports(folder: Path) -> dict[str, set[str]]:
    """Every `mcp...` module each file of the adapter imports, at any depth of the code."""
    import ast

    found: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            found.setdefault(path.name, set()).update(n for n in names if n == "mcp" or n.startswith("mcp."))
    return found


PUBLIC_SDK = {"mcp", "mcp.types", "mcp.server", "mcp.server.transport_security"}


def test_the_adapter_imports_only_the_sdks_public_api():
    """Issue 19: `mcp.server.mcpserver.tools.base.Tool`, `func_metadata`'s `ArgModelBase` and the like are internals
    that can change in any SDK minor; the adapter uses the low-level `Server`, `mcp.types` and the transports only."""
    used = _sdk_imports(ROOT / "mcp_server")
    private = {f: sorted(m for m in mods if m not in PUBLIC_SDK) for f, mods in used.items()}
    assert not any(private.values()), private
    assert "mcp.server" in used["server.py"]  # the check reads the real imports (it would see an internal one)
