"""Toonify's StyleGAN2 library: safe reader of the official pickles, engine-neutral maths, tf1 and torch engines."""
