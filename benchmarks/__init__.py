"""Benchmarks: each module prints one JSON report."""
