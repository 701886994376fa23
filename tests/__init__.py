"""The test suite, one folder per subsystem:

    model/     the network, its layers, the MatConvNet weight layout, presets, weights, sizes, FLOPs
    colour/    transfer functions, colour spaces, metrics, resizing, HDR -> SDR synthesis
    data/      source readers, gain-map JPEGs, `sritm prepare`, the tf.data pipeline, atomic files
    convert/   `sritm convert`: images, video, Matroska, tiling, engines, precision, the graph
    batch/     `sritm convert-batch`: planning, Beam, joining segments
    train/     `sritm train`: both stages, the paper recipe, synthetic data, distribution, resume
    evaluate/  `sritm eval`, the paper's scoring protocol, colour-quality guards, plots
    deploy/    SavedModel and TFLite export, the TF Serving client
    cli/       the command line: options, error lines, fuzzing, and the fault suites (bad input,
               bad options, interrupts, resources)
    bench/     `sritm bench`
    project/   the documentation, the package layout, the notebooks

Shared helpers live in helpers/ (imported as `tests.helpers.<module>`); fixtures used by more
than one folder in conftest.py. `pytest -m "not slow" tests` is the fast tier.
"""
