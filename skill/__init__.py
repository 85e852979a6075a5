"""knowledge-distillation-deep: the skill's rules, decision logic, metrics and quick-distill runner.

Importing this package imports neither torch nor mcp; the runner in `skill.distill` loads torch lazily.
"""

__version__ = "0.1.0"
