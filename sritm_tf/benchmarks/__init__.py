"""Benchmarks as importable modules: `sritm bench NAME` and benchmarks/bench_NAME.py run
`sritm_tf.benchmarks.NAME`, whose `add_arguments(parser)` and `run(args)` they call."""


def main(name, argv=None):
    """Runs benchmark `name` as a script (prog bench_<name>.py): its options, then its run."""
    import argparse
    import importlib

    module = importlib.import_module(f"sritm_tf.benchmarks.{name}")
    parser = argparse.ArgumentParser(prog=f"bench_{name}.py", description=module.__doc__.split("\n\n")[0])
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv))
