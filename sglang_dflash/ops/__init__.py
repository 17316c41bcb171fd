"""Checked wrappers around the Triton kernels in the repository's `kernels/` folder."""
