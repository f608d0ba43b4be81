"""Toonify's StyleGAN2 library: safe reader of the official pickles, engine-neutral maths, tf1 and torch engines."""

__version__ = "0.1.0"  # the project's version (pyproject.toml); the CLIs print it
