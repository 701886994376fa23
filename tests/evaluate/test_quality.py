"""Quality of the bundled weights on a synthetic colour chart (colour that the
classical conversion keeps must not be lost): saturated patches of every hue at
several brightness levels, mastered as HDR10, their SDR made as real SDR grades are
made, LR by bicubic downscaling. Per patch, the model's dE_ITP (BT.2124) must not
exceed the classical conversion's; neutral patches must stay neutral. And SDR
graphics keyed over a real picture must land near graphics white, not be expanded
as highlights.

The chart's SDR: the knee operator with the parameters `training/measure_toe.py
--fit` finds for the film grade of `../shared/data/graded` (a luminance shoulder
from 0.25 of diffuse white, graded on a BT.1886 display with L_B = 1e-4 of white);
every real pair we have fits a shoulder at 0.15-0.25 of white. An SDR without
shoulder or toe (knee 0.8, L_B = 0) is the classical conversion's exact inverse
below 0.8 of white; on it the weights lose in mean dE_ITP (MODEL_CARD.md, "The colour
chart"), and neutral still stays neutral (tested below)."""
import numpy as np
import pytest

from sritm_tf import colour, evaluate, metrics, pretrained
from sritm_tf.data import sdr_synthesis

PATCH = 24  # HR pixels; patches are compared inside a margin of 6
REAL_GRADE = {"knee": 0.25, "black": 1e-4}  # the chart's SDR (see above)
INVERSE_OF_CLASSICAL = {"knee": 0.8, "black": 0.0}


def chart(white=203.0):
    """HR chart: 12 hues x 3 saturations x 3 levels, plus a grey ramp row."""
    rows = []
    for level in (0.2, 0.6, 1.5):  # x diffuse white
        for sat in (0.3, 0.6, 0.9):
            row = []
            for hue in np.arange(0, 360, 30):
                h = np.deg2rad(hue)
                ictcp = colour.rgb2020_to_ictcp(np.full(3, level * white))
                ictcp[1:] = sat * 0.25 * np.array([np.cos(h), np.sin(h)]) * ictcp[0]
                nits = np.maximum(colour.ictcp_to_rgb2020(ictcp), 0.0)
                row.append(np.broadcast_to(nits, (PATCH, PATCH, 3)))
            rows.append(np.concatenate(row, axis=1))
    greys = [np.full((PATCH, PATCH, 3), v * white) for v in np.geomspace(0.01, 1.0, 12)]
    rows.append(np.concatenate(greys, axis=1))
    return colour.master_hdr10(np.concatenate(rows, axis=0), 1000.0)


def convert_chart(grade):
    """(HDR master, model, classical conversion) of the chart with its SDR made by
    `sdr_synthesis.knee(**grade)`, at x2 and white 203."""
    hdr = chart()
    sdr = sdr_synthesis.knee(hdr, 203.0, **grade)
    lr = evaluate.make_lr(sdr, 2)
    model = evaluate.model_predictor(pretrained.load_model(2))(lr, 203.0)
    classical = colour.sdr_to_hdr10_baseline(evaluate.upscale_bicubic(lr, 2), 203.0)
    return hdr, evaluate.to_hdr10(model), evaluate.to_hdr10(classical)


@pytest.fixture(scope="module")
def results():
    return convert_chart(REAL_GRADE)


def patches(image):
    m = 6
    for y in range(0, image.shape[0], PATCH):
        for x in range(0, image.shape[1], PATCH):
            yield (y, x), image[y + m:y + PATCH - m, x + m:x + PATCH - m]


def test_no_patch_loses_colour_to_the_classical_conversion(results):
    """Every patch within 0.5 dE_ITP of the classical conversion's colour error or better;
    the saturated patches outside BT.709 that the SDR clips pass since the training
    targets are limited to P3 (`augment.limit_to_p3`): before, a teal at 0.2x white and
    a sky blue at 0.6x came out over-saturated (dE_ITP 16.6 against 9.4, 27.0 against 18.7)."""
    hdr, model, classical = results
    worse = []
    for ((y, x), ref), (_, m), (_, c) in zip(patches(hdr), patches(model), patches(classical)):
        de_m, de_c = metrics.delta_e_itp(ref, m), metrics.delta_e_itp(ref, c)
        if de_m > de_c + 0.5:  # 0.5 dE_ITP: below visibility (BT.2124: 1 ~ just noticeable)
            worse.append(((y // PATCH, x // PATCH), round(de_m, 2), round(de_c, 2)))
    assert not worse, f"patches where the model's colour error exceeds the classical one: {worse}"


@pytest.mark.parametrize("grade", [REAL_GRADE, INVERSE_OF_CLASSICAL], ids=["real-grade", "inverse-of-classical"])
def test_grey_stays_grey(results, grade):
    """Held by `layers.ChromaGate` (without it the bundled weights tinted greys by up to 14 codes)."""
    _, model, _ = results if grade == REAL_GRADE else convert_chart(grade)
    grey_row = model[-PATCH + 6:-6]
    codes = colour.quantize(grey_row, 10).astype(int)
    spread = codes.max(axis=-1) - codes.min(axis=-1)
    assert spread.max() <= 2, f"neutral patches tinted by up to {spread.max()} ten-bit codes"


def test_model_beats_the_classical_conversion_on_most_patches(results):
    """What the weights do achieve: a lower mean colour error over the chart."""
    hdr, model, classical = results
    assert metrics.delta_e_itp(hdr, model) < metrics.delta_e_itp(hdr, classical)


def test_white_graphics_land_near_graphics_white():
    """A white caption and a white logo box keyed over the bundled sample (SDR 100 %),
    in two places: BT.2408-7 clause 5 puts SDR graphics white at the HDR Reference
    White, here the model's 203 cd/m2. The weights before graphics were in the training
    data made them 2.2-3.1x that (453-623 cd/m2); the bundled weights 1.3-2.0x (265-407
    cd/m2; the box beside the sample's window is read as part of it: a flat SDR 100 %
    is, in a photograph, a clipped highlight). This guards that gain; the target is 1.0x."""
    import cv2

    from sritm_tf import imageio

    sdr = imageio.read_sdr_image(pretrained.sample_path())
    h, w = sdr.shape[0] // 2 * 2, sdr.shape[1] // 2 * 2
    predict = evaluate.model_predictor(pretrained.load_model(2))
    for corner in range(2):
        text, box = np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
        cv2.putText(text, "SCORE 2:1  LIVE", (20, h - 30 if corner == 0 else 40), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 1, 3)
        x0 = w - 100 if corner == 0 else 20
        cv2.rectangle(box, (x0, 20 if corner == 0 else h - 70), (x0 + 60, 60 if corner == 0 else h - 30), 1, -1)
        keyed = sdr[:h, :w].copy()
        keyed[(text | box) > 0] = 255
        out = predict(evaluate.make_lr(keyed / 255.0, 2), 203.0)
        nits = colour.pq_eotf(out) @ colour.HLG_WEIGHTS
        for mask in (text, box):
            inside = cv2.erode(mask, np.ones((3, 3), np.uint8)) > 0
            level = float(np.median(nits[inside]))
            assert 0.9 * 203 < level < 2.1 * 203, f"white graphics at {level:.0f} cd/m2 (corner {corner})"
