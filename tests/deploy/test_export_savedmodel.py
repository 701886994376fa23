"""SavedModel export: TF Serving layout, signatures, parity with Keras in a fresh process."""
import os
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from sritm_tf import build_deep_sritm, colour
from sritm_tf.cli import main
from sritm_tf.export import SIGNATURES, export_savedmodel, serving_path

pytestmark = pytest.mark.slow  # each case exports a SavedModel; some load it in a fresh process


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_deep_sritm(scale=2, channels=8, m=1, n=1)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    base = tmp_path_factory.mktemp("serving")
    return export_savedmodel(model, serving_path(base, "sritm", 3))


def test_tf_serving_layout(exported):
    assert exported.parts[-2:] == ("sritm", "3")
    assert (exported / "saved_model.pb").is_file()
    assert (exported / "variables" / "variables.index").is_file()
    assert os.listdir(exported.parent) == ["3"]  # no temporary folder left behind


def test_signatures_match_keras_in_a_fresh_process(model, exported, tmp_path):
    rng = np.random.default_rng(1)
    yuv = colour.sdr_rgb_to_model_yuv(rng.uniform(0, 1, (2, 16, 24, 3))).astype(np.float32)
    rgb8 = rng.integers(0, 256, (3, 12, 20, 3), dtype=np.uint8)  # another batch and size
    np.savez(tmp_path / "inputs.npz", yuv=yuv, rgb8=rgb8)
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        loaded = tf.saved_model.load({str(exported)!r})
        inputs = np.load({str(tmp_path / "inputs.npz")!r})
        yuv = loaded.signatures["serving_default"](sdr_yuv=tf.constant(inputs["yuv"]))
        pq = loaded.signatures["rgb8_to_pq16"](sdr_rgb8=tf.constant(inputs["rgb8"]))
        np.savez({str(tmp_path / "outputs.npz")!r}, names=sorted(loaded.signatures),
                 hdr_yuv=yuv["hdr_yuv"].numpy(), hdr_pq16=pq["hdr_pq16"].numpy())
    """)
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    out = np.load(tmp_path / "outputs.npz")
    assert list(out["names"]) == sorted(SIGNATURES)

    expected_yuv = model(yuv).numpy()
    assert out["hdr_yuv"].dtype == np.float32 and out["hdr_yuv"].shape == (2, 32, 48, 3)
    np.testing.assert_allclose(out["hdr_yuv"], expected_yuv, atol=1e-5, rtol=0)

    # rgb8_to_pq16 = the numpy colour pipeline around the Keras model.
    hdr_yuv = model(colour.sdr_rgb_to_model_yuv(rgb8 / 255.0).astype(np.float32)).numpy()
    expected_pq = colour.quantize(colour.model_yuv_to_pq2020_rgb(hdr_yuv), 16)
    assert out["hdr_pq16"].dtype == np.uint16 and out["hdr_pq16"].shape == (3, 24, 40, 3)
    diff = np.abs(out["hdr_pq16"].astype(np.int64) - expected_pq)
    assert diff.max() <= 1 and np.mean(diff > 0) < 0.02  # float32 vs float64 at rounding ties
    assert len(np.unique(out["hdr_pq16"])) > 100  # a real image, not a clipped constant


def _saved_model_cli():
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    return [cli] if os.path.exists(cli) else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


def parse_show_all(text):
    """{signature: {"inputs"|"outputs": {name: (dtype, shape)}, "method": ...}} from
    `saved_model_cli show --all`."""
    signatures = {}
    text = text.split("Concrete Functions:")[0]
    for block in re.split(r"\n(?=signature_def\[)", text):
        head = re.match(r"signature_def\['([^']+)'\]", block)
        if not head:
            continue
        entry = {"inputs": {}, "outputs": {}}
        for kind, name, dtype, shape in re.findall(
                r"(inputs|outputs)\['([^']+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\([^)]*\))", block):
            entry[kind][name] = (dtype, shape)
        method = re.search(r"Method name is: (\S+)", block)
        entry["method"] = method and method[1]
        signatures[head[1]] = entry
    return signatures


def test_saved_model_cli_show_all(exported):
    text = subprocess.run(_saved_model_cli() + ["show", "--dir", str(exported), "--all"],
                          capture_output=True, text=True, check=True).stdout
    sigs = parse_show_all(text)
    dynamic = "(-1, -1, -1, 3)"
    assert sigs["serving_default"]["inputs"] == {"sdr_yuv": ("DT_FLOAT", dynamic)}
    assert sigs["serving_default"]["outputs"] == {"hdr_yuv": ("DT_FLOAT", dynamic)}
    assert sigs["rgb8_to_pq16"]["inputs"] == {"sdr_rgb8": ("DT_UINT8", dynamic)}
    assert sigs["rgb8_to_pq16"]["outputs"] == {"hdr_pq16": ("DT_UINT16", dynamic)}
    assert {sigs[s]["method"] for s in SIGNATURES} == {"tensorflow/serving/predict"}


def test_refuses_to_overwrite(model, exported):
    with pytest.raises(FileExistsError):
        export_savedmodel(model, exported)


def test_cli_export(model, tmp_path, capsys):
    weights = tmp_path / "tiny.keras"
    model.save(weights)
    base = tmp_path / "models"
    args = ["export", "--format", "savedmodel", "--weights", str(weights), "-o", str(base), "--version", "2"]
    assert main(args) == 0
    assert (base / "sritm" / "2" / "saved_model.pb").is_file()
    stamp = os.path.getmtime(base / "sritm" / "2" / "saved_model.pb")

    assert main(args) == 2  # exists, no --overwrite
    assert "exists" in capsys.readouterr().err
    assert os.path.getmtime(base / "sritm" / "2" / "saved_model.pb") == stamp
    assert main(args[:-2] + ["--version", "2", "--quantize", "int8"]) == 2
    assert main(args + ["--scale", "4", "--overwrite"]) == 2  # the weights are x2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sritm export: error:") and "x2" in err[-1]
