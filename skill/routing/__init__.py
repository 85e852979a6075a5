"""Routing: does a request belong to this skill, to a sibling skill, or nowhere near distillation?

One public entry, `route_request`. The rest of the package is its inside, in the order a request passes through it.
"""

from skill.routing.decide import route_request

__all__ = ["route_request"]
