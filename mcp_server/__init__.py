"""A thin MCP adapter over `skill`: it registers tools, resources and a prompt, and formats errors.

No decision is made here. Importing this package does not import torch.
"""
