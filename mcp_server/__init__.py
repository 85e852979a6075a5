"""A thin MCP adapter over `skill` on the SDK's public low-level API: it lists the tools from the stored manifest,
translates each call to the library (`skill.commands`, `skill.export.confined`, `skill.distill.jobs`) and back, and
serves the kd:// resources and the planning prompt. No decision is made here. Importing it does not import torch.
"""
