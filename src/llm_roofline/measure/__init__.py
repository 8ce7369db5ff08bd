"""Measure the machine in front of you: microbenchmarks (micro.py), real decode (bench.py)."""
