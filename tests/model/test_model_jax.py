"""The network on the JAX backend gives the TensorFlow backend's outputs."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("jax", reason="jax is not installed: the JAX-backend test needs it (pip install '.[jax]')")

from sritm_tf import build_deep_sritm

pytestmark = pytest.mark.slow  # a JAX-backend subprocess


@pytest.mark.parametrize("scale", [2, 4])
def test_jax_backend_matches_tensorflow(tmp_path, scale):
    model = build_deep_sritm(scale=scale, channels=8, m=1, n=1)
    x = np.random.default_rng(1).random((1, 11, 14, 3), dtype=np.float32)
    weights = tmp_path / "tiny.weights.h5"
    model.save_weights(weights)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import numpy as np, keras
        assert keras.backend.backend() == "jax"
        from sritm_tf import build_deep_sritm, intermediate_model
        model = build_deep_sritm(scale={scale}, channels=8, m=1, n=1)
        model.load_weights(r"{weights}")
        x = np.load(r"{tmp_path / 'x.npy'}")
        np.save(r"{tmp_path / 'y.npy'}", np.asarray(model(x)))
        maps = intermediate_model(model)(x)
        assert set(maps) >= {{"rmb1_modulation", "y_f"}}
    """)
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True, text=True)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model(x).numpy(), atol=1e-5)
