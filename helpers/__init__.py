"""Attention Lab's helpers: the code behind the notebooks, one small module per topic."""

from helpers.env import Lab, setup

__version__ = "0.1.0"
__all__ = ["Lab", "setup"]
