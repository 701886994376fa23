"""Bad option values and output paths, run through `sritm` as a subprocess as a user would:
one stderr line naming the option or path, exit status 2, before anything is written and,
for most, before TensorFlow is imported. The library functions behind them refuse the same
values with the project's error types.
"""
import os
from fractions import Fraction

import numpy as np
import pytest

from sritm_tf.errors import InputError

from tests.helpers.paths import REPO
from tests.helpers.processes import assert_one_error_line, assert_refused, sritm, sritm_reporting_tensorflow
from tests.helpers.records import write_records


# ---------------------------------------------------------------------------
# Values of every command's options: one line naming the option, before TensorFlow
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("args, names", [
    (["convert", "{png}", "-o", "{out}/o.png", "--scale", "3"], ["--scale", "3"]),
    (["convert", "{png}", "-o", "{out}/o.png", "--format", "gif"], ["--format", "gif"]),
    (["convert", "{png}", "-o", "{out}/o.png", "--fps", "abc"], ["--fps", "abc"]),
    (["convert", "{png}", "-o", "{out}/o.png", "--tile", "12xabc"], ["--tile", "12xabc"]),
    (["convert", "{png}", "-o", "{out}/o.png", "--white-nits", "-5"], ["--white-nits", "-5"]),
    (["convert", "{png}", "-o", "{out}/o.png", "--peak-nits", "nan"], ["--peak-nits", "nan"]),
    (["convert", "{png}", "-o", "{out}/o.png", "--transfer", "hlg", "--peak-nits", "4000"],
     ["--peak-nits 4000", "--transfer hlg", "1000 cd/m2"]),
    (["convert", "{png}", "-o", "{out}/o.gif"], ["o.gif", "unknown output format"]),
    (["convert", "{yuv}", "-o", "{out}/o.yuv"], ["clip.yuv", "--input-size"]),
    (["convert", "{yuv}", "-o", "{out}/o.yuv", "--input-size", "63x48"], ["clip.yuv", "check --input-size"]),
    (["convert", "{png}", "-o", "{out}/o.png", "--weights", "{png}"], ["img.png", "unknown weights format"]),
    (["eval", "{out}", "--white-nits", "bright"], ["--white-nits", "bright"]),
    (["eval", "{out}", "--crop", "0x0"], ["--crop"]),
    (["eval", "{out}"], ["no <name>_sdr.*"]),
    (["export", "--format", "savedmodel", "-o", "{out}/m", "--version", "0"], ["--version", "0"]),
    (["export", "--format", "tflite", "-o", "{out}/m.tflite", "--input-size", "wide"], ["--input-size", "wide"]),
    (["export", "--format", "tflite", "-o", "{out}/m.tflite", "--calibration", "{png}"], ["--calibration"]),
    (["train", "--patch-size", "ten"], ["--patch-size", "ten"]),
    (["train", "{out}", "--lr", "nan"], ["--lr", "nan"]),
    (["train", "{out}", "--batch-size", "0"], ["--batch-size", "0"]),
    (["train", "--init", "{png}", "--pairs", "{out}", "--patch-size", "0"], ["--patch-size", "0"]),
    (["prepare", "{png}", "-o", "{out}/p", "--scale", "8"], ["--scale", "8"]),
], ids=lambda value: " ".join(value) if isinstance(value, list) and value[0] in (
    "convert", "eval", "export", "train", "prepare") else None)
def test_bad_argument_values_are_one_line(inputs, folders, args, names):
    out, tmp = folders
    paths = {"png": inputs / "img.png", "yuv": inputs / "clip.yuv", "out": out}
    result = sritm_reporting_tensorflow(*[arg.format(**paths) for arg in args], tmp=tmp)
    line = assert_refused(result, args[0], *names, before_tensorflow=False)
    assert result.stdout.strip() in ("", "False"), "TensorFlow was imported first"
    assert "usage:" not in line
    assert os.listdir(out) == [] and os.listdir(tmp) == []


def test_argument_errors_come_before_tensorflow(tmp_path):
    from sritm_tf.pretrained import sample_path

    (tmp_path / "frames").mkdir()
    cases = [(["convert", "missing.png", "-o", "x.png"], "convert", ["missing.png", "no such file"]),
             (["convert", "frames", "-o", "x.png"], "convert", ["frames", "is a folder"]),
             (["convert", sample_path(), "-o", "x.png", "--tile", "0"], "convert", ["--tile"]),
             (["convert", sample_path(), "-o", "x.png", "--weights", "none.npz"], "convert", ["none.npz"]),
             (["export", "--format", "tflite", "-o", "missing/x.tflite"], "export", ["missing", "does not exist"]),
             (["export", "--format", "tflite", "-o", "x.tflite", "--input-size", "0x9"], "export", ["--input-size"]),
             (["serve-client", sample_path(), "-o", "missing/x.png"], "serve-client", ["missing", "does not exist"])]
    for args, command, names in cases:
        result = sritm_reporting_tensorflow(*args, cwd=tmp_path)
        assert_one_error_line(result, command, *names)
        assert result.stdout.strip() == "False", args  # TensorFlow was never imported
    assert os.listdir(tmp_path) == ["frames"]


@pytest.mark.parametrize("values, option", [
    (["--input-size", "0x0"], "--input-size"), (["--input-size", "abc"], "--input-size"),
    (["--input-size", "16x8", "--fps", "-5"], "--fps"), (["--input-size", "16x8", "--fps", "0"], "--fps"),
    (["--input-size", "16x8", "--fps", "nan"], "--fps"), (["--input-size", "16x8", "--fps", "5000"], "--fps"),
    (["--input-size", "16x8", "--size", "33x18"], "--size 33x18"),
    (["--input-size", "16x8", "--size", "0x8"], "--size")])
def test_bad_size_and_fps_values_are_one_line(tmp_path, values, option):
    raw = tmp_path / "in.yuv"
    raw.write_bytes(bytes(16 * 8 * 3 // 2 * 2))  # two 16x8 yuv420p frames
    out = tmp_path / "out"
    out.mkdir()
    result = sritm("convert", raw, "-o", out / "o.mp4", "--quiet", *values)
    assert_one_error_line(result, "convert", option, values[-1])
    assert list(out.iterdir()) == []


def test_fps_zero_is_refused_by_the_api_too(tmp_path):
    from sritm_tf.convert import open_source

    raw = tmp_path / "in.yuv"
    raw.write_bytes(bytes(16 * 8 * 3 // 2))
    with pytest.raises(InputError, match="--fps"):
        open_source(raw, "16x8", 0)
    assert open_source(raw, "16x8", 24).frame_rate == 24
    assert open_source(raw, "16x8", 29.97).frame_rate == Fraction(2997, 100)  # not 2**-48 steps


# ---------------------------------------------------------------------------
# Encoder settings are checked before the first frame
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("values, option", [
    (["--preset", "fastest"], "--preset"), (["--crf", "52"], "--crf"), (["--crf", "-1"], "--crf")])
def test_bad_encoder_settings_fail_before_any_frame(tmp_path, clip, values, option):
    result = sritm_reporting_tensorflow("convert", clip, "-o", tmp_path / "o.mp4", "--quiet", *values)
    assert_one_error_line(result, "convert", option, values[-1])
    assert result.stdout.strip() == "False"  # refused before TensorFlow started, let alone a frame
    assert os.listdir(tmp_path) == []


def test_encoder_settings_are_checked_before_decoding_in_the_api(tmp_path, clip, monkeypatch):
    from sritm_tf import convert
    from sritm_tf.video import sources

    def no_decoding(self):
        raise AssertionError("decoded before the encoder settings were checked")

    monkeypatch.setattr(sources.VideoSource, "__iter__", no_decoding)
    for settings, option in (({"preset": "fastest"}, "--preset"), ({"crf": 99}, "--crf"),
                             ({"crf": float("nan")}, "--crf")):
        with pytest.raises(InputError, match=f"^{option}: "):
            convert.convert_video(clip, tmp_path / "o.mkv", baseline=True, progress=False, **settings)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# Display levels
# ---------------------------------------------------------------------------
def test_peak_below_white_is_refused(tmp_path, pairs_dir):
    result = sritm("convert", pairs_dir / "a_sdr.png", "-o", tmp_path / "o.png", "--baseline", "--peak-nits", 150)
    assert_one_error_line(result, "convert", "--peak-nits 150", "--white-nits 203")
    assert os.listdir(tmp_path) == []


def test_hlg_output_refuses_a_peak_above_its_display():
    """HLG output is for BT.2100's 1000 cd/m2 reference display (`colour.pq_to_hlg` clips there),
    so a higher peak would be silently ignored: the API refuses it as the CLI does."""
    from sritm_tf.convert import FrameConverter

    with pytest.raises(InputError, match="peak 4000 cd/m2 with HLG output"):
        FrameConverter(baseline=True, transfer="hlg", peak_nits=4000.0)
    assert FrameConverter(baseline=True, transfer="hlg", peak_nits=1000.0).transfer == "hlg"
    from sritm_tf.batch import plan  # convert_batch() checks its settings before it makes any folder

    with pytest.raises(InputError, match="peak 4000 cd/m2 with HLG output"):
        plan.batch_settings(transfer="hlg", peak_nits=4000.0)
    with pytest.raises(InputError, match="must be in"):
        plan.batch_settings(peak_nits=-5.0)
    assert plan.batch_settings(transfer="hlg")["peak_nits"] == 1000.0


# ---------------------------------------------------------------------------
# Training numbers
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("option, value", [("--lr", "nan"), ("--lr", "-1"), ("--pretrain-lr", "inf"),
                                           ("--batch-size", "0"), ("--steps", "0"), ("--checkpoint-every", "0")])
def test_train_refuses_bad_numbers_before_writing_anything(tmp_path, option, value):
    records = write_records(str(tmp_path / "records"), count=2, size=20, shards=1)
    run_dir = tmp_path / "run"
    args = {"--steps": "1", "--pretrain-steps": "1", "--batch-size": "1", option: value}
    result = sritm("train", records, *[x for kv in args.items() for x in kv], "--channels", 4, "--m", 1, "--n", 1,
                   "-o", run_dir)
    assert_one_error_line(result, "train", f"{option}: expected", value)
    assert not run_dir.exists()


def test_a_config_yaml_rate_written_as_text_is_one_line(tmp_path):
    """PyYAML reads `lr: 1e-4` as the string '1e-4' (YAML 1.1 floats need a dot)."""
    from sritm_tf.commands.train import check_config
    from sritm_tf.errors import UserError
    from sritm_tf.train.config import TrainConfig

    cfg = TrainConfig(data=str(tmp_path), run_dir=str(tmp_path / "run"), lr="1e-4")
    with pytest.raises(UserError, match="--lr: expected a positive number, got '1e-4'"):
        check_config(cfg, overwrite=False)


def test_training_stops_with_one_line_when_the_loss_is_no_longer_finite():
    """A diverged run stops at once (`train.StopOnNaN`), before a checkpoint of NaNs is written."""
    import keras

    from sritm_tf.errors import UserError
    from sritm_tf.train.loop import StopOnNaN

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((8, 2), np.float32)
    y = np.ones((8, 1), np.float32)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[StopOnNaN()])  # finite: runs through
    y[5] = np.nan
    with pytest.raises(UserError, match=r"the training loss became nan at step 2 .*weights are no longer finite.*--lr"):
        model.fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False, callbacks=[StopOnNaN()])


# ---------------------------------------------------------------------------
# Output paths: missing folders, files where folders go, foreign folders, the input itself
# ---------------------------------------------------------------------------
def test_eval_json_into_a_missing_folder_fails_first(tmp_path, pairs_dir):
    target = tmp_path / "missing" / "result.json"
    result = sritm("eval", pairs_dir, "--baseline-only", "--json", target)
    assert_one_error_line(result, "eval", "--json", target, "does not exist")
    assert not result.stdout  # no pair was evaluated
    assert list(tmp_path.iterdir()) == [] and sorted(os.listdir(pairs_dir)) == ["a_hdr.png", "a_sdr.png"]


def test_export_savedmodel_onto_a_file(tmp_path):
    target = tmp_path / "models"
    target.write_text("not a folder")
    result = sritm("export", "--format", "savedmodel", "-o", target)
    assert_one_error_line(result, "export", target, "is a file")
    assert target.read_text() == "not a folder" and list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize("name", ["../elsewhere", "a/b", "", ".."])
def test_export_model_name_is_one_folder(tmp_path, name):
    result = sritm("export", "--format", "savedmodel", "-o", tmp_path / "models", "--model-name", name)
    assert_one_error_line(result, "export", "--model-name", repr(name))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_output_folders_that_are_files_are_one_line(tmp_path, pairs_dir):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    result = sritm("prepare", pairs_dir, "-o", taken, "--kind", "pairs")
    assert_one_error_line(result, "prepare", taken, "is a file")
    result = sritm("train", "--init", REPO / "sritm_tf" / "weights" / "deep_sritm_x2.npz", "--pairs", pairs_dir,
                   "-o", taken)
    assert_one_error_line(result, "train", taken, "-o")
    assert taken.read_text() == "mine" and sorted(os.listdir(tmp_path)) == ["taken"]


@pytest.mark.slow
def test_prepare_writes_nothing_for_missing_sources_or_into_a_foreign_folder(tmp_path, pairs_dir):
    out = tmp_path / "out"
    result = sritm("prepare", tmp_path / "missing", "-o", out)
    assert_one_error_line(result, "prepare", tmp_path / "missing")
    assert not out.exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "manifest.jsonl").write_text('{"name": "a list of mine"}\n')
    result = sritm("prepare", pairs_dir, "-o", foreign, "--kind", "pairs")
    assert_one_error_line(result, "prepare", foreign / "manifest.jsonl", "not a manifest written by sritm prepare")
    assert os.listdir(foreign) == ["manifest.jsonl"]


def test_convert_batch_with_nothing_to_convert_fails_and_writes_nothing(tmp_path):
    pytest.importorskip("apache_beam")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no pictures here")
    out = tmp_path / "out"
    result = sritm("convert-batch", empty, "-o", out, "--baseline")
    assert_one_error_line(result, "convert-batch", empty, "no images or videos")
    result = sritm("convert-batch", tmp_path / "missing.png", "-o", out, "--baseline")
    assert_one_error_line(result, "convert-batch", "missing.png", "no such file")
    assert not out.exists()


def test_convert_batch_refuses_a_mistyped_option_instead_of_handing_it_to_beam(tmp_path):
    """A typo is refused before Beam or TensorFlow starts and before OUT_DIR is made; Beam's options
    go after a bare --."""
    from sritm_tf.cli import build_parser, parse

    out = tmp_path / "out"
    result = sritm("convert-batch", tmp_path, "-o", out, "--whitenits", "400")
    line = assert_one_error_line(result, "convert-batch", "--whitenits 400", "after a bare --")
    assert "unrecognized arguments" in line and not out.exists()
    args = parse(build_parser(), ["convert-batch", "in", "-o", "out", "--white-nits", "400", "--",
                                  "--project=p", "--region=r"])
    assert args.white_nits == 400 and args.inputs == ["in"] and args.beam_args == ["--project=p", "--region=r"]
    assert parse(build_parser(), ["convert-batch", "in", "-o", "out"]).beam_args == []
    args = parse(build_parser(), ["convert", "-o", "out.png", "--", "-x.png"])  # elsewhere -- is argparse's own
    assert args.input == "-x.png" and args.output == "out.png"


@pytest.mark.parametrize("name", ["still.png", "clip.mp4"])
def test_the_input_is_never_the_output(tmp_path, clip, name):
    import shutil

    source = tmp_path / name
    if name.endswith(".png"):
        import cv2

        cv2.imwrite(str(source), np.full((8, 8, 3), 90, np.uint8))
    else:
        shutil.copy(clip, source)
    before = source.read_bytes()
    result = sritm("convert", source, "-o", source, "--overwrite", "--baseline", "--quiet")
    assert_one_error_line(result, "convert", source, "is the input file")
    assert source.read_bytes() == before and os.listdir(tmp_path) == [name]


def test_convert_batch_never_plans_an_input_as_its_own_output(tmp_path):
    pytest.importorskip("apache_beam")
    import cv2

    from sritm_tf.batch import plan

    cv2.imwrite(str(tmp_path / "still.png"), np.full((8, 8, 3), 90, np.uint8))
    settings = {"format": "mkv", "segment_seconds": 10.0}
    titles, units, report = plan.plan([str(tmp_path / "still.png")], str(tmp_path), settings, overwrite=True)
    assert titles == [] and units == []
    assert [(os.path.basename(p), "is the input file" in why) for p, why in report["failed"]] == [("still.png", True)]
    with pytest.raises(InputError, match="is the output folder .-o. too"):  # the whole folder: refused up front
        plan.plan([str(tmp_path)], str(tmp_path), settings, overwrite=True)


def test_train_checks_every_pair_and_path_before_tensorflow(tmp_path, pairs_dir):
    """A fine-tuning pair whose sizes differ, a missing --pairs folder and an -o that is a file are
    one line each, before TensorFlow starts and before any folder is made."""
    import shutil

    import cv2

    weights = REPO / "sritm_tf" / "weights" / "deep_sritm_x2.npz"
    pairs = tmp_path / "pairs"
    shutil.copytree(pairs_dir, pairs)
    sdr = cv2.imread(str(pairs / "a_sdr.png"))
    cv2.imwrite(str(pairs / "b_sdr.png"), sdr)
    cv2.imwrite(str(pairs / "b_hdr.png"), np.zeros((sdr.shape[0], sdr.shape[1] - 2, 3), np.uint16))
    run = tmp_path / "run"
    result = sritm_reporting_tensorflow("train", "--init", weights, "--pairs", pairs, "-o", run)
    assert_refused(result, "train", "b_hdr.png", "differs from b_sdr.png")
    result = sritm_reporting_tensorflow("train", "--init", weights, "--pairs", tmp_path / "none", "-o", run)
    assert_refused(result, "train", "none", "no such folder")
    taken = tmp_path / "taken"
    taken.write_text("mine")
    result = sritm_reporting_tensorflow("train", "--init", weights, "--pairs", pairs_dir, "-o", taken)
    assert_refused(result, "train", taken, "-o")
    assert sorted(os.listdir(tmp_path)) == ["pairs", "taken"] and taken.read_text() == "mine"


def test_serve_client_and_export_check_their_outputs_before_tensorflow(tmp_path):
    """A serve-client output that is not a .png, a --host that is not a server, and an export onto a
    SavedModel version that exists: one line each, before TensorFlow starts."""
    import cv2

    sdr = tmp_path / "sdr.png"
    cv2.imwrite(str(sdr), np.zeros((4, 4, 3), np.uint8))
    result = sritm_reporting_tensorflow("serve-client", sdr, "-o", tmp_path / "x.jpg")
    assert_refused(result, "serve-client", "x.jpg", ".png")
    result = sritm_reporting_tensorflow("serve-client", sdr, "-o", tmp_path / "x.png", "--host", "http://foo:bar")
    assert_refused(result, "serve-client", "http://foo:bar", "port")
    version = tmp_path / "models" / "sritm" / "3"
    version.mkdir(parents=True)
    result = sritm_reporting_tensorflow("export", "--format", "savedmodel", "-o", tmp_path / "models",
                                        "--version", "3")
    assert_refused(result, "export", version, "exists")
    assert os.listdir(version) == [] and sorted(os.listdir(tmp_path)) == ["models", "sdr.png"]
