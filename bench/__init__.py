"""Benchmarks: evaluation time, memory and the dependency graph's critical path per cluster size.

Run `uv run python -m bench` (or `mise run bench`); see bench/__main__.py.
"""
