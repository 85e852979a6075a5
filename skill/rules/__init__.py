"""Rule files (YAML) and their JSON Schemas: the single source of truth for every threshold.

The loader lives in `loader.py` (a package and a module cannot share the name `rules`).
"""

from skill.rules.loader import RULE_NAMES, RuleFileError, RuleSet, get_rules, load_rules_from, rule_file_text, rules_dir

__all__ = ["RULE_NAMES", "RuleFileError", "RuleSet", "get_rules", "load_rules_from", "rule_file_text", "rules_dir"]
