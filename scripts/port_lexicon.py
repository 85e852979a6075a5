"""Port word-list edits made to a one-file boundaries.yaml (the layout before issue 19) into skill/rules/lexicon/.

Why: issue 19 moved every word list out of boundaries.yaml into lexicon/*.yaml while other branches were still editing
patterns in the old file. Given such a file, this rewrites, in the lexicon, each list whose values differ from the
shipped rules, copying each entry's source text verbatim (double-quoted escapes kept; an entry too long for 200
columns is folded with YAML escaped line breaks, which join with nothing between). Comments and headers of the lexicon
files stay; decision rules (weights, thresholds, reasons) are not touched: port those by hand.
One-off: delete it once no branch edits the old layout.
Usage: python scripts/port_lexicon.py OLD_LAYOUT_BOUNDARIES_YAML [--rules-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterator

import yaml

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 200


def _node(mapping: yaml.MappingNode, key: str) -> yaml.Node | None:
    return next((v for k, v in mapping.value if k.value == key), None)


def old_lists(root: yaml.MappingNode) -> Iterator[tuple[tuple[str, ...], yaml.Node]]:
    """Every word list of the old layout, by its lexicon address: (section, key) or ('terms', owner, group id)."""
    for section in ("reading", "numbers"):
        block = _node(root, section)
        for key, value in block.value if isinstance(block, yaml.MappingNode) else ():
            if isinstance(value, (yaml.SequenceNode, yaml.MappingNode)):
                yield (section, key.value), value
    owners: list[tuple[str, Any]] = [("in_scope", _node(_node(root, "in_scope"), "groups"))]  # type: ignore[arg-type]
    owners.append(("budget", yaml.SequenceNode("tag:yaml.org,2002:seq", [_node(root, "budget")])))
    for field, name in (("boundaries", "id"), ("siblings", "skill")):
        for entry in _node(root, field).value:  # type: ignore[union-attr]
            owners.append((_node(entry, name).value, _node(entry, "groups")))  # type: ignore[union-attr]
    for owner, groups in owners:
        for group in groups.value if groups is not None else ():
            patterns = _node(group, "patterns")
            if patterns is not None:
                yield ("terms", owner, _node(group, "id").value), patterns  # type: ignore[union-attr]


def _splittable(raw: str, at: int) -> bool:
    """A fold point: no space on either side (YAML would strip it), not right after an escaping backslash."""
    if raw[at] in " \t" or raw[at - 1] in " \t":
        return False
    slashes = len(raw[:at]) - len(raw[:at].rstrip("\\"))
    return slashes % 2 == 0


def fold(raw: str, prefix: str, indent: str) -> list[str]:
    """One entry on one line, or a double-quoted one folded with escaped line breaks (its value unchanged)."""
    lines, rest = [], raw
    while len(prefix) + len(rest) > LIMIT:
        if not rest.startswith('"') and prefix.lstrip().startswith("-"):
            raise ValueError(f"cannot fold an unquoted entry: {raw[:60]}")
        room = LIMIT - len(prefix) - 1
        points = [p for p in range(room, 20, -1) if _splittable(rest, p)]
        best = next((p for p in points if rest[p - 1] == "|"), None)
        best = best or next((p for p in points if rest[p - 1] == ")"), points[0])  # prefer folding after an alternative
        lines.append(prefix + rest[:best] + "\\")
        prefix, rest = indent, rest[best:]
    return lines + [prefix + rest]


def entries(text: str, value: yaml.Node, indent: str) -> list[str]:
    """Block form of a list (or a table of units), each entry's source text kept, comments between entries kept."""
    src = lambda node: text[node.start_mark.index:node.end_mark.index]  # noqa: E731
    out: list[str] = []
    if isinstance(value, yaml.MappingNode):
        return [f"{indent}{src(k)}: {src(v)}" for k, v in value.value]
    previous = None
    for item in value.value:
        if previous is not None:  # a comment between two entries of a flow list stays before the second
            between = text[previous.end_mark.index:item.start_mark.index]
            gap = [line.strip().lstrip(",").strip() for line in between.splitlines()]
            out += [indent + line for line in gap if line.startswith("#")]
        if isinstance(item, yaml.ScalarNode):
            raw = src(item)
            if not raw.startswith('"') and len(indent) + 2 + len(raw) > LIMIT:
                raw = json.dumps(item.value, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar
            out += fold(raw, indent + "- ", indent + "  ")
        else:
            out.append(indent + "- " + src(item))  # a short inner list (ml_together)
        previous = item
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _block(lines: list[str], address: tuple[str, ...]) -> tuple[int, int, str] | None:
    """Where a list's entries stand in a lexicon file: (first line, end line, their indent), or None."""
    start, stop = 0, len(lines)
    for depth, name in enumerate(address):
        want = " " * (2 * depth) + name + ":"
        found = next((i for i in range(start, stop) if lines[i] == want), None)
        if found is None:
            return None
        start = found + 1  # the key's own block ends at the next line indented as little as the key
        stop = next((i for i in range(start, stop) if lines[i].strip() and _indent(lines[i]) <= 2 * depth), stop)
    depth = len(address)
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) >= 2 * depth):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return start, end, " " * (2 * depth)


def port(old_file: Path, rules_dir: Path) -> list[str]:
    """Rewrite every lexicon list whose values differ from old_file's; returns the addresses it changed."""
    sys.path.insert(0, str(ROOT))
    from skill.rules import load_rules_from

    rules = load_rules_from(rules_dir).boundaries
    text = old_file.read_text(encoding="utf-8")
    root = yaml.compose(text)
    old = yaml.safe_load(text)
    lexicon = {f: f.read_text(encoding="utf-8").split("\n") for f in sorted((rules_dir / "lexicon").glob("*.yaml"))}
    now_groups, old_groups = _groups(rules), _groups(old)
    changed = []
    for address, node in old_lists(root):
        if address[0] == "terms":
            now, was = now_groups.get(address[1:], {}).get("patterns"), old_groups[address[1:]]["patterns"]
        else:
            now, was = rules[address[0]].get(address[1]), old[address[0]][address[1]]
        if now is not None and _plain(now) == was:
            continue
        found = [(f, b) for f, lines in lexicon.items() if (b := _block(lines, address)) is not None]
        if not found:
            raise SystemExit(f"{'/'.join(address)}: no lexicon file holds this list; add it by hand")
        file, (start, end, indent) = found[0]
        lexicon[file][start:end] = entries(text, node, indent)
        changed.append(f"{file.name}: {'/'.join(address)}")
    for file, lines in lexicon.items():
        file.write_text("\n".join(lines), encoding="utf-8")
    return changed


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _groups(rules: Any) -> dict[tuple[str, str], Any]:
    """Term groups by (owner, group id), from parsed or loaded rules."""
    owners = [("in_scope", rules["in_scope"]["groups"]), ("budget", [rules["budget"]])]
    owners += [(b["id"], b.get("groups", ())) for b in rules["boundaries"]]
    owners += [(s["skill"], s["groups"]) for s in rules["siblings"]]
    return {(owner, g["id"]): g for owner, groups in owners for g in groups}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old_file", type=Path)
    parser.add_argument("--rules-dir", type=Path, default=ROOT / "skill" / "rules")
    args = parser.parse_args()
    changed = port(args.old_file, args.rules_dir)
    print("\n".join(changed) if changed else "no word list differs")


if __name__ == "__main__":
    main()
