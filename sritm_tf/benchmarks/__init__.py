"""Benchmarks as importable functions; `sritm bench` and benchmarks/*.py call them."""
