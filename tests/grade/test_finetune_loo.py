"""Fine-tuning after calibration (`sritm train --init --pairs`, its defaults) adds to the
calibration: fitted on one graded film frame, it scores the other frame, a different shot,
better than the shipped network at the same frame's calibrated white."""
import json
import shutil

import numpy as np
import pytest

from sritm_tf import cli, grade
from sritm_tf.presets import preset_for_scale

from tests.helpers.paths import REPO, need_shared

TRAIN, LEFT_OUT = "cosmos01650", "cosmos01000"


def test_holdout_strip_is_the_right_quarter_of_each_pair():
    from sritm_tf.train.finetune import split_holdout

    sdr, hdr = np.arange(6 * 8).reshape(6, 8, 1), np.arange(12 * 16).reshape(12, 16, 1)
    (train,), (held,) = split_holdout([(sdr, hdr)], 0.25, 2)
    assert train[0].shape == (6, 6, 1) and train[1].shape == (12, 12, 1)
    assert held[0].shape == (6, 2, 1) and held[1].shape == (12, 4, 1)
    assert (held[0] == sdr[:, 6:]).all() and (held[1] == hdr[:, 12:]).all()
    assert split_holdout([(sdr, hdr)], 0, 2) == ([(sdr, hdr)], [])


@pytest.mark.parametrize("better", [False, True])
def test_keep_best_ends_with_the_weights_that_score_best_on_the_held_out_strip(better):
    """Weights that fit the held-out data worse than the starting ones are dropped, better
    ones kept."""
    import keras

    from sritm_tf.train.finetune import KeepBest

    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(3, 1, use_bias=False)])
    model.compile(loss="mse")
    start = np.eye(3, dtype=np.float32)[None, None]
    model.set_weights([start])
    x = np.random.default_rng(0).random((4, 5, 3)).astype(np.float32)
    keep = KeepBest([(x, 0.5 * x)], interval=10)
    keep.set_model(model)
    keep.on_train_begin()
    moved = 0.5 * start if better else 2.0 * start  # the exact fit, or further from it
    model.set_weights([moved])
    keep.on_epoch_end(0)
    keep.on_train_end()
    assert np.array_equal(model.get_weights()[0], moved if better else start)
    assert [step for step, _, _ in keep.curve] == [0, 10]


def single_pair_folder(folder, name):
    folder.mkdir()
    for kind in ("sdr", "hdr"):
        shutil.copy(need_shared(f"graded/{name}_{kind}.png"), folder / f"{name}_{kind}.png")
    return folder


def left_out_score(folder, weights, white):
    """PSNR / dE_ITP of the network `weights` on the pair of `folder` at `white`, as
    `sritm eval --weights W --white-nits white` scores them (`grade.score`)."""
    from sritm_tf.data.pairs import check_pairs, read_matching_pair
    from sritm_tf.inference import TiledPredictor
    from sritm_tf.pretrained import load_model

    (name, sdr, hdr), = check_pairs(str(folder))
    predict = TiledPredictor(grade.network_parts(load_model(2, weights, precision="bf16")))
    return grade.score(grade.prepare_pair(predict, name, *read_matching_pair(sdr, hdr), 2), white, 2)


@pytest.mark.slow  # calibration, 150 fine-tuning steps and two whole 2048x858 frames: minutes
def test_fine_tuning_on_one_frame_beats_calibration_alone_on_another_shot(tmp_path, capsys):
    train_dir = single_pair_folder(tmp_path / "train", TRAIN)
    test_dir = single_pair_folder(tmp_path / "test", LEFT_OUT)
    run = tmp_path / "run"
    init = str(REPO / "sritm_tf" / "weights" / preset_for_scale(2).weights)
    assert cli.main(["train", "--init", init, "--pairs", str(train_dir), "-o", str(run)]) == 0
    written = json.loads((run / "grade.json").read_text())
    white = written["white_nits"]
    assert white == written["calibration"]["white_nits"]
    alone = left_out_score(test_dir, init, white)
    tuned = left_out_score(test_dir, written["weights"], white)
    with capsys.disabled():
        print(f"\n{LEFT_OUT} at {white} cd/m2 (fitted on {TRAIN}): calibration alone {alone['psnr']:.2f} dB "
              f"dE_ITP {alone['de_itp']:.2f}, fine-tuned {tuned['psnr']:.2f} dB dE_ITP {tuned['de_itp']:.2f}")
    assert tuned["psnr"] >= alone["psnr"] + 0.3
    assert tuned["de_itp"] < alone["de_itp"]
