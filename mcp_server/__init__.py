"""A thin MCP adapter over `skill` on the SDK's public low-level API: it lists the tools from the stored manifest
(generated from `skill.tool_specs`), translates each call to the library and back, and serves the library's documents
and workflow text as kd:// resources and a prompt. No decision is made here. Importing it does not import torch.
"""
