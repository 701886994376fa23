"""Shared pytest setup.

Markers:
    slow  tests that start subprocesses of their own (multi-worker and resumed
          training, the JAX backend, notebook kernels). They run by default, as in
          CI; `pytest -m "not slow" tests` gives a fast subset while working.
"""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: starts subprocesses (multi-worker, JAX, notebooks); deselect with -m 'not slow'")
