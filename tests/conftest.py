"""Shared pytest setup: the `slow` marker (registered in pytest.ini) and fixtures used by more
than one folder. Helpers to import live in tests/helpers/.

Markers:
    slow  heavy tests: runs of the `sritm` command line in a subprocess that import
          TensorFlow or convert more than a few frames, signals to running conversions,
          multi-worker and resumed training, the JAX backend, notebook kernels, end-to-end
          video and Beam pipelines, TFLite / OpenVINO / SavedModel conversions and the
          benchmarks. They run by default, as in CI; `pytest -m "not slow" tests` is the fast
          tier (under 3 minutes on 2 cores) to run while working.
"""
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def cache_folder(tmp_path_factory):
    """The calibrated int8 networks of this run (`sritm_tf.calibration`'s cache) go to a folder of the
    run, not the user's ~/.cache; subprocesses inherit it. A SRITM_CACHE set outside is kept."""
    if "SRITM_CACHE" not in os.environ:
        os.environ["SRITM_CACHE"] = str(tmp_path_factory.mktemp("sritm_cache"))
    yield os.environ["SRITM_CACHE"]


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
    """A folder with one SDR/HDR10 pair (the bundled sample and its classical conversion)."""
    import cv2

    from sritm_tf import colour
    from sritm_tf.pretrained import sample_path

    folder = tmp_path_factory.mktemp("pairs")
    sdr8 = cv2.imread(sample_path(), cv2.IMREAD_COLOR)[:64, :96]
    hdr = colour.sdr_to_hdr10_baseline(sdr8[..., ::-1] / 255.0)
    cv2.imwrite(str(folder / "a_sdr.png"), sdr8)
    cv2.imwrite(str(folder / "a_hdr.png"), colour.quantize(hdr, 16)[..., ::-1])
    return folder
