"""`sritm train` end to end on tiny networks: both stages and the run folder, a saved
config run again, fine-tuning to graded-style pairs, user errors, and the JAX backend."""
import glob
import importlib.util
import subprocess
import sys

import keras
import numpy as np
import pytest
import yaml

from sritm_tf import cli, pretrained
from sritm_tf.model import build_deep_sritm
from sritm_tf.train.config import TrainConfig
from sritm_tf.train.data import load_pairs

from tests.helpers.processes import python_env
from tests.helpers.records import write_dark_pairs, write_pairs, write_records

TINY = ["--channels", "8", "--m", "1", "--n", "1", "--batch-size", "4"]


def train_cli(capsys, *argv):
    code = cli.main(["train", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return write_records(str(tmp_path_factory.mktemp("records")), count=24, size=16, shards=2)


@pytest.mark.slow
def test_both_stages_write_the_run_folder(records, tmp_path, capsys):
    run = tmp_path / "run"
    val = write_pairs(str(tmp_path / "val"), count=1, height=64, width=64)
    code, out, err = train_cli(capsys, records, "-o", run, *TINY, "--pretrain-steps", 4, "--steps", 4,
                               "--checkpoint-every", 2, "--val-pairs", val, "--val-crop", 0)
    assert code == 0, err
    assert f"wrote {run}" in out
    for name in ["config.yaml", "pretrain.weights.h5", "final.keras", "deep_sritm_x2.npz",
                 "pretrain/best.keras", "full/best.keras"]:
        assert (run / name).is_file(), name
    for stage in ("pretrain", "full"):  # TensorBoard event files, with the validation run
        assert glob.glob(str(run / stage / "logs" / "train" / "events.out.tfevents.*")), stage
        assert glob.glob(str(run / stage / "logs" / "validation" / "events.out.tfevents.*")), stage

    saved = TrainConfig.load(str(run / "config.yaml"))
    assert (saved.channels, saved.m, saved.n, saved.steps, saved.pretrain_steps) == (8, 1, 1, 4, 4)
    assert saved.val_pairs == val and saved.data == records

    # The final network has modulation branches; the npz rebuilds the same network.
    final = keras.saving.load_model(str(run / "final.keras"), compile=False)
    assert "base_smf_conv1" in {layer.name for layer in final.layers}
    from_npz = pretrained.load_weights_npz(str(run / "deep_sritm_x2.npz"))
    x = np.random.default_rng(0).random((1, 12, 10, 3)).astype("float32")
    assert np.abs(np.asarray(final(x)) - np.asarray(from_npz(x))).max() < 2e-3  # float16 storage

    # A fresh process loads the run's files: compiled (metrics registered) and for inference.
    script = ("import keras, sritm_tf, sritm_tf.train\n"
              f"m = keras.saving.load_model({str(run / 'final.keras')!r}); assert m.compiled\n"
              f"print(sritm_tf.load_model(2, {str(run / 'final.keras')!r}).count_params())")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=python_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split()[-1]) == final.count_params()

    # Stage 2 started from stage 1: the stage-1 weights of shared layers are not fresh ones.
    stage1 = build_deep_sritm(2, channels=8, m=1, n=1, modulation=False)
    stage1.load_weights(str(run / "pretrain.weights.h5"))
    fresh = build_deep_sritm(2, channels=8, m=1, n=1, modulation=False)
    conv = "fusion_rb1_conv1"
    distance = lambda model: np.abs(final.get_layer(conv).get_weights()[0] - model.get_layer(conv).get_weights()[0]).mean()
    assert distance(stage1) < 0.2 * distance(fresh)


@pytest.mark.slow
def test_saved_config_runs_again_with_overrides(records, tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = train_cli(capsys, records, "-o", run, *TINY, "--stage", "full", "--steps", 2,
                             "--checkpoint-every", 2)
    assert code == 0, err
    config = run / "config.yaml"
    code, _, err = train_cli(capsys, config, "--steps", 3)
    assert code == 2 and "final.keras: exists" in err and len(err.strip().splitlines()) == 1
    code, _, err = train_cli(capsys, config, "--steps", 3, "--overwrite")
    assert code == 0, err
    values = yaml.safe_load(config.read_text())
    assert values["steps"] == 3 and values["stage"] == "full" and values["channels"] == 8


@pytest.mark.slow
def test_fine_tuning_on_pairs_lowers_their_loss(tmp_path, capsys):
    keras.utils.set_random_seed(1)
    init = build_deep_sritm(2, channels=8, m=1, n=1)
    weights = pretrained.save_weights_npz(init, str(tmp_path / "init.npz"), dtype="float32")
    pairs = write_pairs(str(tmp_path / "pairs"), count=2, height=64, width=64)
    data = load_pairs(pairs, 2)

    def mse(model):
        return float(np.mean([np.mean((np.asarray(model(s[None]))[0] - h) ** 2) for s, h in data]))

    before = mse(init)
    run = tmp_path / "ft"
    code, _, err = train_cli(capsys, "--init", weights, "--pairs", pairs, "-o", run,
                             "--steps", 40, "--lr", 2e-3, "--patch-size", 16, "--crops", 32)
    assert code == 0, err
    values = yaml.safe_load((run / "config.yaml").read_text())
    assert values["pairs"] == pairs and values["stage"] == "full" and values["channels"] == 8  # from the npz
    assert not (run / "pretrain.weights.h5").exists()  # fine-tuning runs stage 2 only
    after = mse(pretrained.load_weights_npz(str(run / "deep_sritm_x2.npz")))
    assert after < 0.7 * before, (before, after)


def test_fine_tuning_pairs_are_the_inputs_eval_and_convert_see(tmp_path):
    """The LR side of a fine-tuning pair is 8-bit, as real LR content and `sritm eval`'s
    input are (`evaluate.make_lr`), not the unrounded bicubic downscale."""
    from sritm_tf import colour, evaluate
    from sritm_tf.data import pairs as graded

    pairs = write_pairs(str(tmp_path / "pairs"), count=1, height=64, width=48)
    (_, sdr_path, hdr_path), = graded.find_pairs(pairs)
    lr_yuv, hdr_yuv = load_pairs(pairs, 2)[0]
    sdr, hdr = graded.read_pair(sdr_path, hdr_path)
    lr_rgb = colour.model_yuv_to_sdr_rgb(lr_yuv.astype(np.float64))
    assert lr_yuv.shape == (32, 24, 3) and hdr_yuv.shape == (64, 48, 3)
    np.testing.assert_allclose(lr_rgb * 255, np.round(lr_rgb * 255), atol=1e-3)  # whole 8-bit codes
    np.testing.assert_allclose(lr_rgb, evaluate.make_lr(sdr, 2), atol=1e-5)
    np.testing.assert_allclose(hdr_yuv, colour.pq2020_rgb_to_model_yuv(hdr), atol=1e-5)


class Teacher:
    """A stand-in network for `anchor_crops`: its output is its input, upsampled x2, plus 0.25."""

    def predict(self, x, **kwargs):
        return np.asarray(x).repeat(2, 1).repeat(2, 2) + 0.25


def test_anchor_crops_keep_the_teacher_outside_the_codes_the_pairs_cover(tmp_path):
    from sritm_tf import colour
    from sritm_tf.train.data import anchor_crops, sdr_max_codes

    pairs = load_pairs(write_dark_pairs(str(tmp_path / "dark")), 2)
    crops = np.stack([s[:16, :16] for s, _ in pairs] * 8)

    sdr, target, weight, share = anchor_crops(crops, pairs, Teacher(), 2, np.random.default_rng(0))
    assert sdr.shape == crops.shape and target.shape == weight.shape + (3,) == (16, 32, 32, 3)
    np.testing.assert_allclose(target, sdr.repeat(2, 1).repeat(2, 2) + 0.25, atol=1e-6)
    codes = sdr_max_codes(sdr).repeat(2, 1).repeat(2, 2)
    covered = np.percentile(np.concatenate([sdr_max_codes(s).ravel() for s, _ in pairs]), (0.5, 99.5))
    outside = (codes < covered[0]) | (codes > covered[1])
    assert outside.any() and (~outside).any()
    assert (weight[~outside] == 0).all() and (weight[outside] > 0).all()
    assert weight.mean() == pytest.approx(1.0)  # the anchor term weighs as much as the pairs'
    assert share == pytest.approx(outside.mean())
    assert codes.max() > 200  # re-exposed: highlights the dark pairs do not have
    rgb = colour.model_yuv_to_sdr_rgb(sdr.astype(np.float64))
    np.testing.assert_allclose(rgb * 255, np.round(rgb * 255), atol=1e-3)  # 8-bit, as real input
    # each crop's exposure changed by one gain in linear light, within +-3 stops, both ways
    before = colour.gamma_decode(colour.model_yuv_to_sdr_rgb(crops.astype(np.float64)))
    after = colour.gamma_decode(rgb)
    gains = np.array([np.median((a / b)[(a > 0.002) & (a < 0.98)]) for a, b in zip(after, before)
                      if ((a > 0.002) & (a < 0.98)).sum() > 100])
    assert len(gains) >= 12 and gains.min() < 1 < gains.max()
    assert gains.min() >= 2 ** -3.1 and gains.max() <= 2 ** 3.1, gains


def test_fine_tuning_batches_hold_the_pairs_then_the_anchors(tmp_path):
    from sritm_tf.train.data import ANCHOR_COVERAGE, crops_dataset, sdr_max_codes

    pairs = load_pairs(write_dark_pairs(str(tmp_path / "dark")), 2)
    cfg = TrainConfig(pairs="unused", scale=2, patch_size=16, crops=8, batch_size=4)
    sdr, hdr = (np.asarray(t) for t in next(iter(crops_dataset(pairs, cfg))))
    assert sdr.shape == (4, 16, 16, 3) and hdr.shape == (4, 32, 32, 3)  # no teacher: no anchors, no weights
    sdr, hdr, weight = (np.asarray(t) for t in next(iter(crops_dataset(pairs, cfg, Teacher()))))
    assert sdr.shape == (8, 16, 16, 3) and hdr.shape == (8, 32, 32, 3) and weight.shape == (8, 32, 32)
    assert (weight[:4] == 1).all()
    np.testing.assert_allclose(hdr[4:], sdr[4:].repeat(2, 1).repeat(2, 2) + 0.25, atol=1e-6)  # unflipped
    low, high = np.percentile(np.concatenate([sdr_max_codes(s).ravel() for s, _ in pairs]), ANCHOR_COVERAGE)
    codes = sdr_max_codes(sdr[4:]).repeat(2, 1).repeat(2, 2)
    np.testing.assert_array_equal(weight[4:] > 0, (codes < low) | (codes > high))


@pytest.mark.slow
def test_anchored_fine_tuning_keeps_the_init_network_where_the_pairs_show_nothing(tmp_path, capsys):
    """Fine-tuned on dark pairs graded brighter, the network learns the grade there; on
    highlights (codes the pairs lack) the anchored run stays near the --init network,
    where --no-anchor carries the brightening over."""
    from sritm_tf import colour

    keras.utils.set_random_seed(1)
    init = build_deep_sritm(2, channels=8, m=1, n=1)
    weights = pretrained.save_weights_npz(init, str(tmp_path / "init.npz"), dtype="float32")
    pairs = write_dark_pairs(str(tmp_path / "dark"))
    data = load_pairs(pairs, 2)
    bright = colour.sdr_rgb_to_model_yuv(np.linspace(0.8, 1.0, 32 * 32 * 3).reshape(1, 32, 32, 3)).astype(np.float32)
    mse = lambda model: float(np.mean([np.mean((np.asarray(model(s[None]))[0] - h) ** 2) for s, h in data]))
    drift = lambda model: float(np.mean(np.abs(np.asarray(model(bright)) - np.asarray(init(bright)))))
    runs = {}
    for flag in ("--anchor", "--no-anchor"):
        run = tmp_path / flag
        code, _, err = train_cli(capsys, "--init", weights, "--pairs", pairs, "-o", run, flag,
                                 "--steps", 40, "--lr", 2e-3, "--patch-size", 16, "--crops", 32)
        assert code == 0, err
        assert yaml.safe_load((run / "config.yaml").read_text())["anchor"] == (flag == "--anchor")
        runs[flag] = pretrained.load_weights_npz(str(run / "deep_sritm_x2.npz"))
    assert mse(runs["--anchor"]) < 0.5 * mse(init) and mse(runs["--no-anchor"]) < 0.5 * mse(init)
    # A network this small cannot keep the two ranges apart as the real one does (there the
    # highlights drifted 11-36 ten-bit codes from the --init network, anchored 4 at most): 0.59 here.
    assert drift(runs["--anchor"]) < 0.7 * drift(runs["--no-anchor"]), (drift(runs["--anchor"]),
                                                                        drift(runs["--no-anchor"]))


@pytest.mark.slow
def test_fine_tuning_under_the_paper_recipe_runs_without_anchors(tmp_path, capsys):
    init = build_deep_sritm(2, channels=8, m=1, n=1)
    weights = pretrained.save_weights_npz(init, str(tmp_path / "init.npz"), dtype="float32")
    pairs = write_dark_pairs(str(tmp_path / "dark"), count=1, size=32)
    code, out, err = train_cli(capsys, "--init", weights, "--pairs", pairs, "-o", tmp_path / "ft",
                               "--recipe", "paper", "--steps", 2, "--patch-size", 8, "--crops", 4)
    assert code == 0, err
    assert "anchors: off under --recipe paper" in out
    assert (tmp_path / "ft" / "deep_sritm_x2.npz").exists()


@pytest.mark.slow
def test_fine_tuning_keeps_the_init_networks_gates_unless_told(tmp_path, capsys):
    """The classical skip's gates have no weights: the run trains the --init network's
    settings (`pretrained.model_config`), and --chroma-gate / --shadow-gate override them."""
    init = build_deep_sritm(2, channels=8, m=1, n=1, skip="classical", chroma_gate=0.02, shadow_gate=0)
    weights = pretrained.save_weights_npz(init, str(tmp_path / "init.npz"), dtype="float32")
    pairs = write_pairs(str(tmp_path / "pairs"), count=1, height=32, width=32)
    for extra, expected in (((), (0.02, 0)), (("--shadow-gate", 0.002), (0.02, 0.002))):
        run = tmp_path / f"ft{len(extra)}"
        code, _, err = train_cli(capsys, "--init", weights, "--pairs", pairs, "-o", run, "--steps", 1,
                                 "--patch-size", 8, "--crops", 4, *extra)
        assert code == 0, err
        config = pretrained.model_config(pretrained.load_weights_npz(str(run / "deep_sritm_x2.npz")))
        assert (config["chroma_gate"], config["shadow_gate"]) == pytest.approx(expected)
    code, _, err = train_cli(capsys, "--init", weights, "--pairs", pairs, "-o", tmp_path / "bad",
                             "--shadow-gate", -1)
    assert code == 2 and "--shadow-gate" in err and len(err.strip().splitlines()) == 1


def test_user_errors_are_one_line(records, tmp_path, capsys, pairs_dir):
    cases = [
        ([tmp_path / "nothing"], "nothing"),
        (["--pairs", tmp_path], "--init"),
        (["--init", tmp_path / "missing.npz", "--pairs", tmp_path], "missing.npz"),
        ([tmp_path / "missing.yaml"], "missing.yaml"),
    ]
    for argv, word in cases:
        code, _, err = train_cli(capsys, *argv, "-o", tmp_path / "run")
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and word in lines[0], (argv, err)
    keras.utils.set_random_seed(0)
    tiny = pretrained.save_weights_npz(build_deep_sritm(4, channels=8, m=1, n=1), str(tmp_path / "x4.npz"))
    code, _, err = train_cli(capsys, "--init", tiny, "--pairs", pairs_dir, "--channels", "16")
    assert code == 2 and "channels=8" in err
    assert not (tmp_path / "run").exists()


def test_x4_network_starts_from_x2_weights(tmp_path):
    from sritm_tf.train.networks import load_init_weights

    keras.utils.set_random_seed(2)
    x2 = build_deep_sritm(2, channels=8, m=1, n=1)
    path = pretrained.save_weights_npz(x2, str(tmp_path / "x2.npz"), dtype="float32")
    x4 = build_deep_sritm(4, channels=8, m=1, n=1)
    fresh_up2 = [w.copy() for w in x4.get_layer("up_conv2").get_weights()]
    load_init_weights(x4, path)
    shared = [layer.name for layer in x2.layers if layer.weights]
    assert "up_conv1" in shared and "base_smf_conv1" in shared
    for name in shared:
        for got, want in zip(x4.get_layer(name).get_weights(), x2.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)
    for got, want in zip(x4.get_layer("up_conv2").get_weights(), fresh_up2):  # only x4 has it
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax not installed (pip install jax)")
def test_training_runs_on_the_jax_backend(records, tmp_path):
    script = (
        "import keras, sys; assert keras.backend.backend() == 'jax'\n"
        "from sritm_tf.train.config import TrainConfig\nfrom sritm_tf.train.loop import train\n"
        f"cfg = TrainConfig(data={records!r}, run_dir={str(tmp_path / 'jax')!r}, channels=8, m=1, n=1,"
        " batch_size=4, pretrain_steps=2, steps=2, checkpoint_every=2)\n"
        "model = train(cfg)\n"
        "print('trained', len(model.layers))\n"
    )
    env = python_env(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained" in proc.stdout
    # The JAX run's weights load in TensorFlow and give finite output.
    model = pretrained.load_weights_npz(str(tmp_path / "jax" / "deep_sritm_x2.npz"))
    out = np.asarray(model(np.full((1, 8, 8, 3), 0.5, "float32")))
    assert out.shape == (1, 16, 16, 3) and np.isfinite(out).all()


@pytest.mark.slow
def test_mixed_precision_run_saves_a_float32_network(records, tmp_path):
    """--mixed-precision computes in float16 with a float32 head; the saved network is plain
    float32 (run in a subprocess: the Keras dtype policy is global)."""
    script = (
        "from sritm_tf.train.config import TrainConfig\nfrom sritm_tf.train.loop import train\n"
        f"cfg = TrainConfig(data={records!r}, run_dir={str(tmp_path / 'mp')!r}, channels=8, m=1, n=1,"
        " batch_size=4, stage='full', steps=2, checkpoint_every=2, mixed_precision=True)\n"
        "model = train(cfg)\n"
        "print(model.get_layer('base_conv1').compute_dtype, model.output.dtype)\n"
    )
    env = python_env()
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-2:] == ["float16", "float32"]
    final = keras.saving.load_model(str(tmp_path / "mp" / "final.keras"), compile=False)
    assert {layer.dtype_policy.name for layer in final.layers} == {"float32"}
    out = np.asarray(final(np.full((1, 8, 8, 3), 0.5, "float32")))
    assert out.dtype == np.float32 and np.isfinite(out).all()


def test_multi_worker_fit_patch_applies_only_to_the_keras_versions_that_need_it(monkeypatch):
    """keras-team/keras#20585: the workaround replaces a private Keras function, so only the
    versions known to need it get it; the installed one decides by default."""
    from sritm_tf.train import distribute

    assert distribute.multi_worker_fit_needs_patch("3.15.1")
    assert distribute.multi_worker_fit_needs_patch("3.0.0")
    assert not distribute.multi_worker_fit_needs_patch("3.16.0")
    assert not distribute.multi_worker_fit_needs_patch("3.16.0.dev2026010100")
    assert not distribute.multi_worker_fit_needs_patch("4.0.0")
    assert not distribute.multi_worker_fit_needs_patch("2.15.0")
    monkeypatch.setattr(keras, "__version__", "3.15.1")
    assert distribute.multi_worker_fit_needs_patch()
    monkeypatch.setattr(keras, "__version__", "3.16.0")
    assert not distribute.multi_worker_fit_needs_patch()
