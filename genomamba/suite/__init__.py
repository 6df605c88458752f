"""Benchmark suites of labelled tasks: reading, baselines, runs and reports."""
