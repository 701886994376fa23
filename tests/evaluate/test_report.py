"""sritm_tf.report and `sritm eval --report DIR`: the page's files and numbers, its refusals,
and the page as headless Chromium renders it (skipped where chromium is not installed)."""
import html
import json
import os
import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from sritm_tf import colour, evaluate, imageio, metrics, report
from sritm_tf.cli import main

from tests.helpers.pairs import smooth_sdr, write_pair
from tests.helpers.processes import assert_refused, sritm_reporting_tensorflow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install "
                                                             "chromium): the report page is not rendered")
WINDOW = (1280, 2400)


def graded(sdr, white=300.0):
    """An HDR10 grade of `sdr`: the classical mapping at `white`, with a 1000 cd/m2 highlight."""
    hdr = colour.sdr_to_hdr10_baseline(sdr, white, 2.4)
    hdr[8:16, 8:24] = colour.pq_inverse_eotf(1000.0)
    return hdr


def synthetic_result(name, height, width):
    """A `report.write_report` entry: the network close to the grade (an offset growing to the
    right), the classical conversion far darker (white at 100 cd/m2)."""
    sdr = smooth_sdr(height, width)
    reference = graded(sdr)
    classical = evaluate.to_hdr10(colour.sdr_to_hdr10_baseline(sdr, 100.0))
    network = evaluate.to_hdr10(reference + np.linspace(0.0, 0.02, width)[None, :, None])
    scores = {"network": evaluate.quality(reference, network), "classical": evaluate.quality(reference, classical)}
    return {"name": name, "sdr": sdr, "reference": reference, "outputs": {"classical": classical, "network": network},
            "metrics": {label: {k: v[k] for k in evaluate.METRICS} for label, v in scores.items()}}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """(folder of a page written by `report.write_report`, its two entries)."""
    results = [synthetic_result("ramp <1>", 96, 128), synthetic_result("small", 48, 64)]
    folder = tmp_path_factory.mktemp("written") / "report"
    report.write_report(folder, results, title="two pairs")
    return folder, results


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs")
    for name, (h, w) in (("ramp", (96, 128)), ("small ramp", (64, 64))):
        sdr = smooth_sdr(h, w)
        write_pair(str(folder), name, sdr, graded(sdr))
    return str(folder)


@pytest.fixture(scope="module")
def eval_report(pair_dir, tmp_path_factory):
    """The folder `sritm eval --report` wrote, with the shipped x2 network."""
    folder = tmp_path_factory.mktemp("eval") / "report"
    folder.mkdir()  # an empty folder is taken
    assert main(["eval", pair_dir, "--report", str(folder), "--precision", "fp32"]) == 0
    return folder


def page_files(page):
    """The relative src / href targets of a page."""
    return set(re.findall(r'(?:src|href)="([^"#:]+)"', page))


def test_write_report_files_and_numbers(written, tmp_path):
    folder, (result, _) = written
    assert os.listdir(folder.parent) == ["report"]  # no temporary left beside it
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert "ramp &lt;1&gt;" in page and "Mean over 2 pairs" in page and "http" not in page
    targets = page_files(page)
    assert len(targets) == 2 * (4 + 2 + 3)  # per pair: 4 previews (and their links), 2 heat maps, 3 HDR10 PNGs
    assert all((folder / t).is_file() for t in targets)

    # The HDR10 PNGs: 16-bit PQ BT.2020 with their cICP chunk, the network's frame exactly.
    network, classical, reference = result["outputs"]["network"], result["outputs"]["classical"], result["reference"]
    hdr_png = folder / "01_ramp_1" / "network_hdr10.png"
    assert imageio.png_cicp(hdr_png.read_bytes()) == (9, 16, 0, 1)
    assert np.array_equal(imageio.read_image(str(hdr_png)), imageio.hdr_codes16(network))
    preview = imageio.read_image(str(folder / "01_ramp_1" / "SDR.png"))
    assert np.array_equal(preview, np.round(result["sdr"] * 255).astype(np.uint8))

    # The heat map: the colour map from 0 to the scale's top, which ignores the 2 % largest errors.
    de = metrics.delta_e_itp_map(reference, network)
    both = np.stack([de, metrics.delta_e_itp_map(reference, classical)])
    top = report.heat_top(both)
    high = np.percentile(both, 98)
    assert high <= top < 2 * high and top == float(f"{top:.0e}")  # one significant digit
    heat = imageio.read_image(str(folder / "01_ramp_1" / "network_error.png"))
    expected = np.round(report.heat_colours(de, top) * 255)
    assert np.abs(heat.astype(float) - expected).max() <= 1
    assert f"mean {de.mean():.2f}" in page and f"{top:g} and above" in page

    # The hue table: six sectors of the reference plus its near-neutral pixels, covering every pixel.
    shares, errors = report.hue_table(reference, {"network": de})
    assert list(shares) == [*evaluate.HUE_SECTORS, "neutral"] and sum(shares.values()) == pytest.approx(1.0)
    sectors = evaluate.hue_sectors(reference)
    for hue, mask in sectors.items():
        expected = de[mask].mean() if mask.any() else float("nan")
        assert errors["network"][hue] == pytest.approx(expected, nan_ok=True)
    neutral = ~np.any(list(sectors.values()), axis=0)
    assert errors["network"]["neutral"] == pytest.approx(de[neutral].mean())
    assert f"<td>{result['metrics']['network']['psnr_pq']:.2f}</td>" in page

    # A run that fails half way leaves the page that was there as it was, and no temporary.
    copy = tmp_path / "report"
    shutil.copytree(folder, copy)

    def failing():
        yield result
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        report.write_report(copy, failing())
    assert os.listdir(tmp_path) == ["report"] and (copy / "index.html").read_text(encoding="utf-8") == page


def test_eval_report(eval_report):
    page = (eval_report / "index.html").read_text(encoding="utf-8")
    for text in ("<h2>ramp</h2>", "<h2>small ramp</h2>", "classical", "network", "oracle curve", "PSNR PQ",
                 "dE_ITP", "neutral", "Mean over 2 pairs", "64x64, SDR white 203 cd/m2"):
        assert text in page, text
    assert all((eval_report / t).is_file() for t in page_files(page))
    assert imageio.png_cicp((eval_report / "02_small_ramp" / "network_hdr10.png").read_bytes()) == (9, 16, 0, 1)


def test_report_refusals(pair_dir, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    result = sritm_reporting_tensorflow("eval", pair_dir, "--baseline-only", "--report", tmp_path / "full")
    assert_refused(result, "eval", "--report", "full", "--overwrite")
    result = sritm_reporting_tensorflow("eval", pair_dir, "--protocol", "paper", "--report", tmp_path / "new")
    assert_refused(result, "eval", "--report", "--protocol paper")
    result = sritm_reporting_tensorflow("eval", pair_dir, "--report", tmp_path / "none" / "page")
    assert_refused(result, "eval", "--report", "does not exist")
    assert sorted(os.listdir(tmp_path)) == ["full"] and os.listdir(tmp_path / "full") == ["keep.txt"]


def chromium(profile, *args):
    """Headless Chromium as root (no sandbox), its own profile, one device pixel per CSS pixel."""
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                           "--force-device-scale-factor=1", "--hide-scrollbars",
                           f"--window-size={WINDOW[0]},{WINDOW[1]}", *args],
                          capture_output=True, text=True, timeout=120)


def page_check(folder, profile):
    """The page's own load check, as Chromium leaves it in the DOM: (text, image boxes
    [src, left, top, width, height, in the slider])."""
    dom = chromium(profile, "--dump-dom", (folder / "index.html").as_uri())
    check = re.search(r'<p id="page-check" hidden="" data-boxes="([^"]*)">([^<]*)</p>', dom.stdout)
    assert check, dom.stdout[-2000:] + dom.stderr[-2000:]
    return check.group(2), json.loads(html.unescape(check.group(1)))


@needs_chromium
def test_eval_page_loads_in_chromium(eval_report, tmp_path):
    text, boxes = page_check(eval_report, tmp_path / "profile")
    images = (eval_report / "index.html").read_text(encoding="utf-8").count("<img ")
    assert text == f"ok: {images} images" and len(boxes) == images  # no script error, every image decoded


@needs_chromium
def test_page_renders_in_chromium(written, tmp_path):
    folder, _ = written
    text, boxes = page_check(folder, tmp_path / "profile")
    assert text == f"ok: {len(boxes)} images"
    shot = tmp_path / "page.png"
    chromium(tmp_path / "profile", f"--screenshot={shot}", (folder / "index.html").as_uri())
    screen = imageio.read_image(str(shot))
    assert screen.shape[:2] == (WINDOW[1], WINDOW[0])
    seen = 0
    for src, left, top, width, height, in_slider in boxes:
        if top + height > WINDOW[1] or width < 50:
            continue
        shown = screen[top:top + height, left:left + width].astype(float)
        scaled = cv2.resize(imageio.read_image(str(folder / src)), (width, height), interpolation=cv2.INTER_NEAREST)
        # What the page shows is the file, scaled; the slider shows the classical conversion left
        # of its line (the middle) and the network right of it, under the labels at the top.
        ys, xs = (slice(height // 3, -2), slice(2, -2)) if not in_slider else \
            (slice(height // 3, -2), slice(2, width * 2 // 5) if "classical" in src else slice(width * 3 // 5, -2))
        assert shown[ys, xs].std() > 3, src  # an image, not a blank box
        assert np.abs(shown[ys, xs] - scaled[ys, xs]).mean() < 8, src
        seen += 1
    assert seen >= 8  # the first pair's four previews, its slider's two images and its two heat maps
    # The two halves of the slider differ: the classical conversion is the darker one.
    slider = [box for box in boxes if box[5]]
    left, top, width, height = slider[0][1:5]
    halves = screen[top + height // 3:top + height, left:left + width].astype(float)
    assert halves[:, :width * 2 // 5].mean() < halves[:, width * 3 // 5:].mean() - 20
