"""`sritm calibrate`: the network's output at any white from one forward pass, the white of a
grade found again, grade.json, `sritm eval --grade` scoring as calibrate did, fine-tuning at the
fitted white, and (slow) leave-one-out on the two graded film frames."""
import json
import shutil

import numpy as np
import pytest

from sritm_tf import cli, grade
from sritm_tf.pretrained import load_model

from tests.grade.conftest import WHITE, tiny_network
from tests.helpers.paths import need_shared


def test_one_forward_pass_gives_the_output_at_every_white():
    """out(W) = clip(M^-1 residual + PQ(W L)) is the network configured at W, whatever W."""
    from sritm_tf.evaluate import model_predictor
    from sritm_tf.inference import TiledPredictor

    from tests.helpers.records import smooth_image

    model = load_model(2, tiny_network(), precision="fp32")
    sdr = smooth_image(np.random.default_rng(2), 40, 56, np.uint8) / 255.0
    pair = grade.prepare_pair(TiledPredictor(grade.network_parts(model)), "p", sdr, np.zeros_like(sdr), 2)
    predict = model_predictor(model)
    for white in (150.0, 203.0, 640.0):
        assert np.abs(grade.network_output(pair, white) - predict(pair["lr"], white)).max() < 2e-5
    assert np.abs(pair["residual"]).max() > 0.01  # the residual is not zero: the test tests something


def test_a_network_without_the_classical_skip_has_no_white_to_fit():
    from sritm_tf.errors import InputError
    from sritm_tf.model import build_deep_sritm

    with pytest.raises(InputError, match="nothing to fit"):
        grade.network_parts(build_deep_sritm(2, channels=8, m=1, n=1, skip="bicubic"))


def test_calibrate_finds_the_white_of_the_grade_and_eval_scores_as_it_did(tmp_path, graded_pairs, tiny_weights,
                                                                          capsys):
    out = tmp_path / "grade.json"
    assert cli.main(["calibrate", str(graded_pairs), "-o", str(out), "--weights", tiny_weights,
                     "--precision", "fp32"]) == 0
    printed = capsys.readouterr().out
    fitted = json.loads(out.read_text())
    assert fitted["white_nits"] == pytest.approx(WHITE, rel=0.01)
    assert fitted["scale"] == 2 and fitted["weights"] == tiny_weights
    assert [p["name"] for p in fitted["pairs"]] == ["shot0", "shot1"] and fitted["pairs"][0]["size"] == "64x48"
    assert fitted["psnr_after"] > 50 > fitted["psnr_before"] + 10  # the grade's own network: near exact
    assert fitted["de_itp_after"] < 1 < fitted["de_itp_before"]
    assert f"white_nits {fitted['white_nits']:g}" in printed and "| shot1 | 64x48 |" in printed

    report = tmp_path / "eval.json"
    assert cli.main(["eval", str(graded_pairs), "--weights", tiny_weights, "--precision", "fp32",
                     "--grade", str(out), "--json", str(report)]) == 0
    capsys.readouterr()
    rows = {row["frame"]: row for row in json.loads(report.read_text())["rows"] if row["method"] == "model"}
    for pair in fitted["pairs"]:
        assert rows[pair["name"]]["psnr_pq"] == pytest.approx(pair["psnr_after"], abs=0.01)
        assert rows[pair["name"]]["white"] == fitted["white_nits"]

    code = cli.main(["calibrate", str(graded_pairs), "-o", str(out), "--weights", tiny_weights])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(out) in err[0] and "--overwrite" in err[0]


@pytest.mark.slow  # calibration, the page and Chromium
def test_calibrate_report_shows_the_pairs_before_and_after(tmp_path, graded_pairs, tiny_weights, capsys):
    """--report: one section per pair, the network at the default and the fitted white and the
    classical conversion, every image the page names written, and (with Chromium) it loads."""
    from tests.evaluate.test_report import CHROMIUM, page_check, page_files

    out, folder = tmp_path / "grade.json", tmp_path / "report"
    assert cli.main(["calibrate", str(graded_pairs), "-o", str(out), "--weights", tiny_weights,
                     "--precision", "fp32", "--report", str(folder)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"wrote {folder / 'index.html'}"
    fitted = json.loads(out.read_text())
    page = (folder / "index.html").read_text(encoding="utf-8")
    white = f"{fitted['white_nits']:g}"
    for text in ("shot0", "shot1", f"network @{white}", "network @203", f"classical @{white}",
                 f"{fitted['pairs'][1]['psnr_after']:.2f}", f"{fitted['pairs'][0]['psnr_before']:.2f}"):
        assert text in page, text
    files = page_files(page)
    assert len(files) >= 2 * 5 and all((folder / name).is_file() for name in files)
    if CHROMIUM:
        text, boxes = page_check(folder, tmp_path / "profile")
        assert text == f"ok: {page.count('<img ')} images" and len(boxes) == page.count("<img ")
    code = cli.main(["calibrate", str(graded_pairs), "-o", str(tmp_path / "g2.json"), "--report", str(folder)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(folder) in err[0] and "--overwrite" in err[0]


def test_a_single_flat_frame_keeps_the_default_white(tmp_path):
    """Where the frames say nothing of the white (black), the prior keeps 203 cd/m2."""
    pair = {"residual": np.zeros((8, 8, 3)), "light": np.zeros((8, 8, 3)), "hdr": np.zeros((8, 8, 3))}
    assert grade.fit_white([pair]) == pytest.approx(grade.DEFAULT_WHITE, abs=0.5)


def test_fine_tuning_trains_at_the_fitted_white_and_writes_grade_json(tmp_path, graded_pairs, tiny_weights, capsys):
    """RUN/grade.json holds the white the run trained at, so convert --weights RUN/... --grade
    RUN/grade.json runs the network the run validated."""
    import yaml

    from sritm_tf.evaluate import make_lr, model_predictor
    from sritm_tf.pretrained import read_weights

    run = tmp_path / "ft"
    code = cli.main(["train", "--init", tiny_weights, "--pairs", str(graded_pairs), "-o", str(run), "--steps", "1",
                     "--patch-size", "16", "--crops", "8", "--precision", "fp32"])
    assert code == 0, capsys.readouterr().err
    written = json.loads((run / "grade.json").read_text())
    assert written["white_nits"] == pytest.approx(WHITE, rel=0.01)
    assert written["white_nits"] == written["calibration"]["white_nits"]
    assert written["weights"] == str(run / "deep_sritm_x2.npz") and written["init"] == tiny_weights
    assert yaml.safe_load((run / "config.yaml").read_text())["white_nits"] == written["white_nits"]
    validated = read_weights(str(run / "final.keras"))
    assert validated.get_layer("classical").white_nits == written["white_nits"]
    lr = make_lr(np.random.default_rng(4).random((32, 32, 3)), 2)
    converted = model_predictor(load_model(2, written["weights"]))(lr, written["white_nits"])
    # within a quarter of a 10-bit code: the .npz holds the weights in float16
    assert np.abs(converted - model_predictor(validated)(lr, written["white_nits"])).max() < 1e-3 / 4


@pytest.mark.slow
def test_fine_tuning_takes_a_grade_file_and_an_explicit_white_wins(tmp_path, graded_pairs, tiny_weights, capsys):
    grade_file = tmp_path / "grade.json"
    grade_file.write_text(json.dumps({"white_nits": 380.0, "scale": 2}))
    run = tmp_path / "ft"
    for flags, white in ((["--grade", str(grade_file)], 380.0), (["--grade", str(grade_file), "--white-nits", "300"],
                                                                 300.0)):
        assert cli.main(["train", "--init", tiny_weights, "--pairs", str(graded_pairs), "-o", str(run),
                         "--steps", "1", "--patch-size", "16", "--crops", "4", "--overwrite", *flags]) == 0
        assert "white_nits" not in capsys.readouterr().out  # no calibration
        written = json.loads((run / "grade.json").read_text())
        assert written["white_nits"] == white and written["calibration"] is None


# ---------------------------------------------------------------------------
# Leave-one-out on the graded film frames
# ---------------------------------------------------------------------------
FRAMES = ("cosmos01000", "cosmos01650")


def cross_frame_losses(scale, folder):
    """{frame: (white fitted on it alone, white fitted on the other alone, PSNR the other frame
    loses at the first's white against its own)}: each frame calibrated alone, in its own folder."""
    from sritm_tf.precision import resolve

    chosen = resolve("auto")[0]
    fits = {}
    for name in FRAMES:
        single = folder / name
        single.mkdir()
        for kind in ("sdr", "hdr"):
            shutil.copy(need_shared(f"graded/{name}_{kind}.png"), single / f"{name}_{kind}.png")
        fitted, (result,) = grade.calibrate(str(single), scale, precision=chosen)
        fits[name] = fitted["white_nits"], result
    losses = {}
    for name, other in zip(FRAMES, reversed(FRAMES)):
        (white, _), (other_white, other_result) = fits[name], fits[other]
        loss = other_result["after"]["psnr"] - grade.score(other_result, white, scale)["psnr"]
        losses[name] = white, other_white, loss
    return losses


@pytest.mark.slow
def test_the_white_of_one_graded_frame_carries_to_the_other(tmp_path):
    """Fitted on one frame alone, the white scores the other within 0.3 dB PSNR of the white
    fitted on that other frame itself, both ways, at x2."""
    need_shared(*(f"graded/{name}_{kind}.png" for name in FRAMES for kind in ("sdr", "hdr")))
    losses = cross_frame_losses(2, tmp_path)
    print(losses)
    for name, (white, other_white, loss) in losses.items():
        assert 0 <= loss < 0.3, (name, white, other_white, loss)
