"""Kernels: one folder per algorithm, each with a plain-torch reference beside its fast paths.

See kernels/README.md for the notation and the contract every op follows.
"""
