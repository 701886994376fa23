"""`sritm train --recipe paper`: each ingredient of the authors' `train_base_net.m` /
`train_full_net.m` (MatConvNet 1.0-beta25) takes effect: Adam as `adam.m` with
biases at 0.1x the rate and L2 decay in the gradient, the summed L2 loss, the
Xavier-normal init, no augmentation, the epoch schedule."""
import keras
import numpy as np
import pytest
import yaml

from sritm_tf import cli, pipeline
from sritm_tf.model import build_deep_sritm
from sritm_tf.train.config import (MatConvNetAdam, TrainConfig, paper_schedule, paper_steps, reference_l2_loss,
                                   resolve_recipe, xavier_normal)
from sritm_tf.train.networks import compile_model

from tests.helpers.records import write_records


def tiny_conv(seed=0):
    """One 3x3 conv, 3 -> 3 channels, no activation: every gradient is non-zero."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Conv2D(3, 3, padding="same",
                                                                            bias_initializer="random_normal")])


def test_optimizer_is_adam_m_with_bias_rate_and_l2_decay():
    model = tiny_conv()
    kernel, bias = model.trainable_variables
    w = {"kernel": kernel.numpy().astype(np.float64), "bias": bias.numpy().astype(np.float64)}
    lr, decay = 1e-3, 5e-4
    opt = MatConvNetAdam(lr)
    assert opt.epsilon == 1e-8
    rng = np.random.default_rng(1)
    m = {k: 0.0 for k in w}
    v = {k: 0.0 for k in w}
    for t in range(1, 4):
        grads = {k: rng.normal(0, 1e-2, w[k].shape) for k in w}
        opt.apply([keras.ops.convert_to_tensor(grads["kernel"], "float32"),
                   keras.ops.convert_to_tensor(grads["bias"], "float32")], [kernel, bias])
        for k in w:  # cnn_train_dag.m accumulateGradients, then +solver/adam.m
            this_decay = decay if k == "kernel" else 0.0  # biases: weightDecay 0
            this_lr = lr * (1.0 if k == "kernel" else 0.1)  # biases: learningRate 0.1
            der = grads[k] + this_decay * w[k]
            m[k] = 0.9 * m[k] + 0.1 * der
            v[k] = 0.999 * v[k] + 0.001 * der**2
            lr_t = this_lr * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
            w[k] = w[k] - lr_t * m[k] / (np.sqrt(v[k]) + 1e-8)
        np.testing.assert_allclose(kernel.numpy(), w["kernel"], rtol=0, atol=2e-7)
        np.testing.assert_allclose(bias.numpy(), w["bias"], rtol=0, atol=2e-7)


def test_decay_is_in_the_gradient_of_kernels_only():
    model = tiny_conv()
    kernel, bias = model.trainable_variables
    k0, b0 = kernel.numpy().copy(), bias.numpy().copy()
    MatConvNetAdam(1e-3).apply([keras.ops.zeros_like(kernel), keras.ops.zeros_like(bias)], [kernel, bias])
    # Zero loss gradient: the kernel still moves, by Adam's first step on 5e-4 w.
    g = 5e-4 * k0.astype(np.float64)
    expected = k0 - 1e-3 * g / (np.abs(g) + 1e-8 / np.sqrt(1 - 0.999))
    np.testing.assert_allclose(kernel.numpy(), expected, rtol=0, atol=6e-8)  # float32 ulp at 0.3: 3e-8
    step = kernel.numpy() - k0
    assert np.all(step * np.sign(k0) < -1e-4)  # every weight, towards zero (about lr, less for tiny ones)
    np.testing.assert_array_equal(bias.numpy(), b0)


@pytest.mark.parametrize("recipe, ratio", [("paper", 0.1), ("ours", 1.0)])
def test_fit_steps_biases_at_a_tenth_of_the_rate(recipe, ratio):
    # Adam's first step moves every weight by about lr (|g| >> eps): the bias / kernel
    # step ratio is the ratio of their learning rates.
    model = compile_model(tiny_conv(), 1e-3, recipe)
    kernel, bias = model.trainable_variables
    k0, b0 = kernel.numpy().copy(), bias.numpy().copy()
    rng = np.random.default_rng(0)
    x, y = rng.random((4, 12, 12, 3), np.float32), rng.random((4, 12, 12, 3), np.float32)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    step_k, step_b = np.abs(kernel.numpy() - k0), np.abs(bias.numpy() - b0)
    np.testing.assert_allclose(step_k, 1e-3, rtol=0.02)
    np.testing.assert_allclose(step_b, ratio * 1e-3, rtol=0.02)


def test_loss_is_half_the_summed_squared_error_averaged_over_the_batch():
    rng = np.random.default_rng(0)
    y_true = rng.random((3, 12, 12, 3)).astype(np.float32)
    y_pred = np.clip(y_true + rng.normal(0, 0.1, y_true.shape), 0, 1).astype(np.float32)
    per_image = 0.5 * ((y_pred - y_true).astype(np.float64) ** 2).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(np.asarray(reference_l2_loss(y_true, y_pred)), per_image, rtol=1e-5)
    # The loss model.fit minimises: the batch mean of those sums (cnn_train_dag.m's 1 / batchSize).
    identity = compile_model(keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Identity()]), 1e-3, "paper")
    loss = identity.evaluate(y_pred, y_true, batch_size=3, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(per_image.mean(), rel=1e-5)
    # PSNRLoss.m back-propagates d clipped to [-1, 1]: beyond |d| = 1 the loss grows as |d| - 0.5.
    far = np.zeros((1, 2, 2, 3), np.float32)
    far[0, 0, 0, 0] = 3.0
    assert float(reference_l2_loss(np.zeros_like(far), far)[0]) == pytest.approx(2.5)


def test_xavier_normal_init():
    keras.utils.set_random_seed(0)
    model = build_deep_sritm(2, channels=32, m=1, n=1, skip="classical")
    glorot = model.get_layer("fusion_rb1_conv1").kernel.numpy().ravel()
    xavier_normal(model)
    kernel = model.get_layer("fusion_rb1_conv1").kernel.numpy().ravel()  # 3x3x32x32
    std = np.sqrt(2 / (9 * 32 + 9 * 32))  # dagnn.Conv initParams: sqrt(2 / (fan_in + fan_out))
    assert np.std(kernel) == pytest.approx(std, rel=0.05) and abs(np.mean(kernel)) < 0.05 * std
    # Normal, untruncated: about 8 % beyond the uniform's bound sqrt(3) std, 4.6 % beyond 2 std.
    assert np.mean(np.abs(kernel) > np.sqrt(3) * std) > 0.06 and np.mean(np.abs(kernel) > 2.2 * std) > 0.015
    assert np.std(glorot) == pytest.approx(std, rel=0.05) and np.mean(np.abs(glorot) > np.sqrt(3) * std) == 0
    assert not np.any(model.get_layer("out_conv").kernel.numpy())  # the classical skip's zero conv stays
    assert not any(np.any(v.numpy()) for v in model.trainable_variables if v.name == "bias")


def test_no_augmentation_in_the_paper_pipeline(tmp_path):
    folder = write_records(str(tmp_path / "records"), count=8, size=12, shards=1)
    raw = [s for s, _ in pipeline.make_dataset(folder, 1, 2, training=False)]
    raw = [np.asarray(s)[0] for s in raw]

    def unchanged(augment):
        ds = pipeline.make_dataset(folder, 4, 2, training=True, seed=3, shuffle_buffer=8, augment=augment)
        found = []
        for sdr, _ in ds.take(4):
            found += [any(np.array_equal(s, r) for r in raw) for s in np.asarray(sdr)]
        return found

    assert all(unchanged(False))
    assert not all(unchanged(True))  # ours flips and rotates
    assert pipeline.count_records(folder) == 8


def test_schedule_in_epochs_of_the_records():
    assert paper_steps(100, 16) == (200 * 7, 270 * 7)  # ceil(100 / 16) = 7 steps per epoch
    schedule = paper_schedule(1e-7, 270 * 7)
    for step, lr in [(0, 1e-7), (250 * 7 - 1, 1e-7), (250 * 7, 1e-8), (260 * 7 - 1, 1e-8), (260 * 7, 1e-9),
                     (270 * 7 - 1, 1e-9)]:
        assert float(schedule(step)) == pytest.approx(lr, rel=1e-6), step

    cfg = resolve_recipe(TrainConfig(recipe="paper"), lambda: 100)
    assert (cfg.pretrain_lr, cfg.lr, cfg.pretrain_steps, cfg.steps) == (5e-7, 1e-7, 1400, 1890)
    cfg = resolve_recipe(TrainConfig(recipe="paper", steps=27, pretrain_steps=5, lr=1e-6), lambda: 1 / 0)
    assert (cfg.lr, cfg.steps, cfg.pretrain_steps) == (1e-6, 27, 5)
    cfg = resolve_recipe(TrainConfig(), lambda: 1 / 0)
    assert (cfg.recipe, cfg.pretrain_lr, cfg.lr, cfg.pretrain_steps, cfg.steps) == ("ours", 1e-4, 1e-4, 20000, 20000)


@pytest.mark.slow
def test_cli_recipe_paper(tmp_path, capsys):
    records = write_records(str(tmp_path / "records"), count=24, size=16, shards=2)
    run = tmp_path / "run"
    code = cli.main(["train", records, "--recipe", "paper", "--skip", "bicubic", "-o", str(run),
                     "--channels", "8", "--m", "1", "--n", "1", "--batch-size", "4", "--stage", "full",
                     "--steps", "2", "--checkpoint-every", "2"])
    out = capsys.readouterr()
    assert code == 0, out.err
    # 24 records in batches of 4: 6 steps an epoch, 200 epochs of pre-training.
    assert "recipe paper: 6 steps per epoch (24 records), pre-training 1200 steps at 5e-07" in out.out
    values = yaml.safe_load((run / "config.yaml").read_text())
    assert values["recipe"] == "paper" and values["lr"] == 1e-7 and values["steps"] == 2
    final = keras.saving.load_model(str(run / "final.keras"))
    assert isinstance(final.optimizer, MatConvNetAdam)
    assert (final.optimizer.bias_lr_multiplier, final.optimizer.l2_decay, final.optimizer.epsilon) == (0.1, 5e-4, 1e-8)
    assert final.loss is reference_l2_loss or getattr(final.loss, "fn", None) is reference_l2_loss
