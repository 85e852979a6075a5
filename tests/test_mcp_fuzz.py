"""Fuzz every tool through the in-memory client with arguments generated from the tool's own JSON Schema:
valid, edge-case and invalid (wrong types, out-of-range numbers, NaN, huge strings and lists, unknown fields,
empty objects). Every call must give a valid structured result or an isError naming a field."""

from __future__ import annotations

import math
from pathlib import Path

import anyio
import jsonschema
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from mcp import Client

from mcp_server.server import build_server
from skill.distill.jobs import Limits
from tests.mcp_helpers import text_of

ROOTS = Path(__file__).resolve().parents[1] / ".cache" / "fuzz"
ROOTS.mkdir(parents=True, exist_ok=True)
SERVER = build_server(Limits(data_root=ROOTS, output_root=ROOTS, max_concurrent=1))


def _tools():
    async def go():
        async with Client(SERVER) as client:
            return {t.name: t for t in (await client.list_tools()).tools}

    return anyio.run(go)


TOOLS = _tools()
# a valid quick distill would train for real: cap it so a generated one finishes in about a second
CHEAP_DISTILL = {"epochs": 1, "teacher_epochs": 1, "time_budget_s": 2, "seeds": 1, "save_artifacts": False, "teacher_hidden": [8]}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


def _mutations(schema: dict) -> st.SearchStrategy[dict]:
    props = sorted(schema.get("properties", {}))
    base = from_schema(schema)
    wrong_type = st.tuples(base, st.sampled_from(props), json_values).map(lambda t: {**t[0], t[1]: t[2]})
    huge = st.sampled_from(["string", "list"]).map(lambda kind: "x" * 100_000 if kind == "string" else [0] * 50_000)  # built lazily, short repr
    edge = st.sampled_from([1e308, -1e308, 10**30, -1, 0, {}, [], ""]) | huge
    extreme = st.tuples(base, st.sampled_from(props), edge).map(lambda t: {**t[0], t[1]: t[2]})
    unknown = base.map(lambda d: {**d, "not_a_field": 1})
    return st.one_of(base, wrong_type, extreme, unknown, st.just({}))


async def _call(name: str, arguments: dict):
    async with Client(SERVER) as client:
        result = await client.call_tool(name, arguments)
        ping = await client.call_tool("kd_choose_alpha", {"deployment_environment": "server"})
        return result, ping


def _check(name: str, arguments: dict) -> None:
    tool = TOOLS[name]
    result, ping = anyio.run(_call, name, arguments)
    assert not ping.is_error  # the server still answers a normal call
    if result.is_error:
        text = text_of(result)
        fields = set(tool.input_schema.get("properties", {})) | {"not_a_field", "request", "missing student"}
        assert any(f in text for f in fields), f"{name}: error names no field: {text[:300]}"
        assert "Traceback" not in text
    else:
        jsonschema.validate(result.structured_content, tool.output_schema)


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_fuzz_tool(name):
    schema = TOOLS[name].input_schema
    examples = 12 if name == "kd_run_quick_distill" else 40

    @seed(20261128)
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(_mutations(schema))
    def run(arguments):
        if name == "kd_run_quick_distill" and "not_a_field" not in arguments:
            arguments = {**arguments, **CHEAP_DISTILL}
        _check(name, arguments)

    run()


def test_nan_in_a_required_number_is_refused_with_the_field():
    """The client turns NaN into null on the wire; a required number then fails naming its field."""
    args = {"alpha": math.nan, "teacher_size": 1, "teacher_accuracy": 0.9, "student_size": 1, "student_accuracy": 0.5}
    result, _ = anyio.run(_call, "kd_score_distillation", args)
    assert result.is_error and "alpha" in text_of(result)
