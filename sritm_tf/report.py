"""An HTML page to look at conversions side by side (`sritm eval --report DIR`).

`write_report(folder, results, title)` writes `folder/index.html`, one self-contained page
(inline CSS and JavaScript, nothing fetched from the network), with its images as files
beside it, referenced by relative paths. Each entry of `results` is a dict:

    {"name": "cosmos01000",                  # the pair, a heading of the page
     "sdr": array,                           # HR SDR BT.709 R'G'B' in [0, 1] (H, W, 3), or None
     "reference": array,                     # the graded HDR10 frame: BT.2020 PQ R'G'B' in [0, 1]
     "outputs": {"classical": array,         # HDR10 conversions, same size and signal as
                 "network": array},          #   "reference"; the slider compares the first with the last
     "metrics": {"network": {"psnr_pq": 41.2, "de_itp": 5.1, ...},   # numbers shown as they are,
                 "classical": {...}, "oracle curve": {...}},          #   a label may have no image
     "caption": "128x96, SDR white 203 cd/m2"}                        # optional

Per pair the page shows: tone-mapped previews for an SDR screen (`colour.hdr10_preview`:
the BT.2390 EETF rolls the pair's highlights down to a 250 cd/m2 white, sRGB 8-bit PNG) of
the SDR, the reference and every output; a before/after slider (first output against the
last); a heat map of the per-pixel dE_ITP (ITU-R BT.2124, `metrics.delta_e_itp_map`) of each
output against the reference, on one scale per pair; the metrics; the mean dE_ITP per hue
sector of the reference (`evaluate.hue_sectors`) and in its near-neutral pixels; and links
to the 16-bit PQ BT.2020 PNGs with their cICP chunk (`imageio.encode_hdr_png`) for HDR
screens. Metric keys of `evaluate.COLUMNS` get their headings and formats; others show as
named. A pair's metrics that are NaN read "n/a".

The folder is written under a temporary name beside it and renamed into place
(`fileio.atomic_path`): an interrupted run leaves no half page.
"""
import contextlib
import html
import math
import os
import re

import numpy as np

from sritm_tf import colour, imageio
from sritm_tf.fileio import atomic_path

PREVIEW_WHITE = 250.0  # cd/m2 shown as the SDR screen's white (`colour.hdr10_preview`)
HEAT_COLOURS = "magma"  # matplotlib colour map of the dE_ITP heat maps
NEUTRAL = "neutral"  # the reference's near-neutral pixels, in no hue sector


def check_folder(folder, overwrite=False, option="--report"):
    """Fails before any work when `folder` cannot take the report: a file, a folder that is
    not empty (unless `overwrite`), or a parent folder that is missing or read-only.
    Raises UserError naming `option`."""
    from sritm_tf.errors import UserError

    parent = os.path.dirname(os.path.abspath(folder))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(f"{option} {folder}: is a file, not a folder")
    if os.path.isdir(folder) and os.listdir(folder) and not overwrite:
        raise UserError(f"{option} {folder}: exists and is not empty (pass --overwrite to replace it)")
    if not os.path.isdir(parent):
        raise UserError(f"{option} {folder}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UserError(f"{option} {folder}: cannot write in folder {parent}")


def eval_result(name, images, rows):
    """The `write_report` entry of one pair of `evaluate.evaluate`: its `frames` callback's
    `images` ({"sdr", "hdr", method: frame}) and the pair's rows; the classical conversion
    ("bt2408") and the network ("model") as outputs, the oracle curve's metrics beside them."""
    from sritm_tf.evaluate import METRICS

    labels = {"bt2408": "classical", "model": "network", "oracle": "oracle curve"}
    mine = {row["method"]: row for row in rows}
    first, oracle = rows[0], mine["oracle"]
    return {"name": name, "sdr": images["sdr"], "reference": images["hdr"],
            "outputs": {labels[m]: images[m] for m in ("bt2408", "model") if m in images},
            "metrics": {labels[m]: {k: row[k] for k in METRICS} for m, row in mine.items()},
            "caption": f"{first['size']}, SDR white {first['white']:.0f} cd/m2; oracle curve: white "
                       f"{oracle['white']:.0f} cd/m2, gamma {oracle['gamma']:.2f}"}


@contextlib.contextmanager
def eval_frames(folder, title):
    """A `frames` callback for `evaluate.evaluate` that adds each pair to the report at
    `folder` as it is scored (`eval_result`), so no frame is kept; the page is put in place
    when the block ends without an error."""
    with open_report(folder, title) as add:
        yield lambda name, images, rows: add(eval_result(name, images, rows))


def write_report(folder, results, title="sritm report"):
    """Writes the page (see the module docstring for `results`) to `folder`/index.html, with
    its images, replacing `folder` whole. `results` is read once (a generator is fine).
    Returns the path of index.html."""
    with open_report(folder, title) as add:
        for result in results:
            add(result)
    return os.path.join(os.fspath(folder), "index.html")


@contextlib.contextmanager
def open_report(folder, title="sritm report"):
    """Yields add(result), which writes one pair's images (an entry as in the module
    docstring) at once; index.html is written, and the folder renamed into place
    (`fileio.atomic_path`), when the block ends without an error."""
    with atomic_path(os.fspath(folder)) as tmp:
        os.mkdir(tmp)
        sections, metrics = [], []

        def add(result):
            sections.append(_pair_section(tmp, f"{len(sections) + 1:02d}_{_slug(result['name'])}", result))
            metrics.append(result.get("metrics") or {})

        yield add
        if len(metrics) > 1:
            sections.insert(0, f"<h2>Mean over {len(metrics)} pairs</h2>" + metrics_table(mean_metrics(metrics)))
        with open(os.path.join(tmp, "index.html"), "w", encoding="utf-8") as f:
            f.write(_page(title, sections))


def mean_metrics(metrics):
    """{label: {metric: mean over the pairs}} of a list of per-pair {label: {metric: number}};
    NaN where a pair's value is NaN, as `evaluate.mean_rows`."""
    labels = dict.fromkeys(label for pair in metrics for label in pair)
    means = {}
    for label in labels:
        values = [pair[label] for pair in metrics if label in pair]
        keys = dict.fromkeys(k for v in values for k in v if isinstance(v[k], (float, int, np.number)))
        means[label] = {k: float(np.mean([v[k] for v in values if k in v])) for k in keys}
    return means


def _slug(text):
    """`text` as a file name safe in a URL."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "image"


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def _png8(rgb):
    """R'G'B' in [0, 1] -> 8-bit PNG bytes."""
    return imageio.encode_image(np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8), ".png")


def heat_colours(values, top):
    """`values` / `top`, clipped to [0, 1], through the `HEAT_COLOURS` colour map: R'G'B' in [0, 1]."""
    import matplotlib

    return np.asarray(matplotlib.colormaps[HEAT_COLOURS](np.clip(np.asarray(values) / top, 0.0, 1.0)))[..., :3]


def heat_top(maps):
    """The top of a heat map scale: the 98th percentile of all `maps` rounded up to one
    significant digit (at least 1), so that a few outliers (a clipped highlight) do not
    flatten the rest."""
    high = max(float(np.percentile(m, 98)) for m in maps)
    if high <= 1:
        return 1.0
    power = 10.0 ** math.floor(math.log10(high))
    return math.ceil(high / power) * power


def hue_table(reference, de_maps):
    """({hue: fraction of the pixels}, {label: {hue: mean dE_ITP}}) over the hue sectors of
    `reference` (`evaluate.hue_sectors`) and its near-neutral pixels (`NEUTRAL`)."""
    from sritm_tf.evaluate import hue_errors, hue_sectors

    sectors = hue_sectors(reference)
    sectors[NEUTRAL] = ~np.any(list(sectors.values()), axis=0)
    shares = {hue: float(mask.mean()) for hue, mask in sectors.items()}
    return shares, {label: hue_errors(sectors, de) for label, de in de_maps.items()}


def _pair_section(root, stem, result):
    """Writes one pair's images to `root`/`stem`/ and returns its HTML."""
    from sritm_tf.metrics import delta_e_itp_map

    os.mkdir(os.path.join(root, stem))
    reference, outputs = result["reference"], result["outputs"]
    peak = max(float(colour.pq_eotf(np.max(reference))), 1000.0)  # the reference's brightest channel
    files = {}

    def image(kind, label, data):
        name = f"{stem}/{_slug(label)}{kind}.png"
        _write(os.path.join(root, name), data)
        return name

    shown = {"SDR": result.get("sdr"), "graded HDR": reference, **outputs}
    for label, frame in shown.items():
        if frame is not None:
            pixels = frame if label == "SDR" else colour.hdr10_preview(frame, peak, PREVIEW_WHITE)
            files[label] = image("", label, _png8(pixels))
    hdr_links = {label: image("_hdr10", label, imageio.encode_hdr_png(frame))
                 for label, frame in {"graded HDR": reference, **outputs}.items()}
    de_maps = {label: delta_e_itp_map(reference, frame) for label, frame in outputs.items()}
    top = heat_top(de_maps.values()) if de_maps else 1.0
    heat = {label: image("_error", label, _png8(heat_colours(de, top))) for label, de in de_maps.items()}

    h, w = reference.shape[:2]
    parts = [f'<section class="{"small" if w < 640 else "large"}"><h2>{_e(result["name"])}</h2>']  # small: upscaled
    if result.get("caption"):
        parts.append(f'<p class="caption">{_e(result["caption"])}</p>')
    parts.append('<div class="grid">' + "".join(_figure(files[k], k) for k in files) + "</div>")
    if len(outputs) > 1:
        before, after = list(outputs)[0], list(outputs)[-1]
        parts.append(_slider(files[before], before, files[after], after, w, h))
    if heat:
        parts.append(f"<h3>dE_ITP against the graded HDR</h3>{_legend(top)}")
        parts.append('<div class="grid">' + "".join(_figure(heat[k], f"{k}, mean {de_maps[k].mean():.2f}")
                                                    for k in heat) + "</div>")
    if result.get("metrics"):
        parts.append("<h3>Metrics</h3>" + metrics_table(result["metrics"]))
    if de_maps:
        shares, errors = hue_table(reference, de_maps)
        parts.append("<h3>Mean dE_ITP per hue sector of the graded HDR</h3>" + _hue_html(shares, errors))
    links = " ".join(f'<a href="{_e(path)}">{_e(label)}</a>' for label, path in hdr_links.items())
    parts.append(f'<p class="hdr">HDR10 PNGs (16-bit PQ BT.2020, cICP), for an HDR screen: {links}</p></section>')
    return "\n".join(parts)


def _e(text):
    return html.escape(str(text))


def _figure(src, label):
    return (f'<figure><a href="{_e(src)}"><img src="{_e(src)}" alt="{_e(label)}"></a>'
            f'<figcaption>{_e(label)}</figcaption></figure>')


def _slider(before_src, before, after_src, after, width, height):
    return (f'<h3>{_e(before)} (left) | {_e(after)} (right)</h3><div style="max-width: {min(1100, 4 * width)}px">'
            f'<div class="compare" style="aspect-ratio: {width} / {height}">'
            f'<img src="{_e(after_src)}" alt="{_e(after)}"><img class="before" src="{_e(before_src)}" '
            f'alt="{_e(before)}"><div class="divider"></div><span class="tag left">{_e(before)}</span>'
            f'<span class="tag right">{_e(after)}</span></div>'
            f'<input type="range" class="slider" min="0" max="100" value="50" '
            f'aria-label="{_e(before)} left of the line, {_e(after)} right"></div>')


def _legend(top):
    stops = ", ".join("rgb({:.0f},{:.0f},{:.0f})".format(*(255 * heat_colours(v, 1.0)))
                      for v in np.linspace(0.0, 1.0, 9))
    ticks = "".join(f"<span>{v:g}</span>" for v in np.linspace(0.0, top, 5))
    return (f'<div class="legend"><div class="bar" style="background: linear-gradient(to right, {stops})"></div>'
            f'<div class="ticks">{ticks}</div><p>dE_ITP (ITU-R BT.2124); {top:g} and above at the right end</p></div>')


def _number(value, spec=".4g"):
    if isinstance(value, (float, np.floating)):
        return "n/a" if math.isnan(value) else format(float(value), spec)
    return _e(value)


def metrics_table(metrics):
    """HTML table of {label: {metric: value}}, one row per label, the columns in first-seen
    order; the keys of `evaluate.COLUMNS` (and `PAPER_COLUMNS`) with their headings and formats."""
    from sritm_tf.evaluate import COLUMNS, PAPER_COLUMNS

    headings = {key: heading for heading, key, _ in PAPER_COLUMNS + COLUMNS}
    formats = {key: spec for _, key, spec in PAPER_COLUMNS + COLUMNS}
    keys = list(dict.fromkeys(k for values in metrics.values() for k in values))
    head = "".join(f"<th>{_e(headings.get(k, k))}</th>" for k in keys)
    body = "".join(f"<tr><th>{_e(label)}</th>"
                   + "".join(f"<td>{_number(values.get(k, ''), formats.get(k, '.4g'))}</td>" for k in keys) + "</tr>"
                   for label, values in metrics.items())
    return f"<table><tr><th></th>{head}</tr>{body}</table>"


def _hue_html(shares, errors):
    head = "".join(f"<th>{_e(hue)}</th>" for hue in shares)
    share = "".join(f"<td>{'&lt;0.1' if 0 < v < 0.0005 else format(100 * v, '.1f')}</td>" for v in shares.values())
    body = "".join(f"<tr><th>{_e(label)}</th>" + "".join(f"<td>{_number(v, '.2f')}</td>"
                                                          for v in values.values()) + "</tr>"
                   for label, values in errors.items())
    return f"<table><tr><th></th>{head}</tr><tr><th>% of pixels</th>{share}</tr>{body}</table>"


STYLE = """
body { background: #1b1b1b; color: #ddd; font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; }
h1 { font-size: 1.4em; } h2 { margin-top: 2em; border-top: 1px solid #444; padding-top: 1em; }
h3 { font-size: 1em; margin: 1.2em 0 0.4em; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 10px; }
figure { margin: 0; } figure img, .compare img { width: 100%; display: block; }
.small img { image-rendering: pixelated; }
figcaption, .caption, .legend p { color: #aaa; font-size: 0.9em; }
.compare { position: relative; overflow: hidden; cursor: ew-resize; touch-action: none; }
.compare img { position: absolute; top: 0; left: 0; height: 100%; }
.compare .divider { position: absolute; top: 0; bottom: 0; width: 2px; background: #fff; left: 50%; }
.tag { position: absolute; top: 6px; background: rgba(0,0,0,.6); padding: 1px 6px; }
.tag.left { left: 6px; } .tag.right { right: 6px; }
.slider { width: 100%; margin: 4px 0 0; }
.legend { max-width: 520px; } .legend .bar { height: 14px; }
.legend .ticks { display: flex; justify-content: space-between; font-size: 0.85em; }
table { border-collapse: collapse; margin: 0.3em 0; } td, th { padding: 2px 10px; text-align: right; }
tr:nth-child(even) { background: #262626; } a { color: #8cf; }
"""

# Records script errors and images that fail to load (capture: load errors do not bubble),
# and on load writes what it found into #page-check: a check a headless browser can read.
WATCH = """
window.pageErrors = [];
window.addEventListener("error", function (e) {
  window.pageErrors.push(e.message || ("failed to load " + (e.target.src || e.target.href)));
}, true);
"""

SCRIPT = """
document.querySelectorAll(".compare").forEach(function (box) {
  var range = box.nextElementSibling, before = box.querySelector(".before"),
      line = box.querySelector(".divider");
  function show() {
    before.style.clipPath = "inset(0 " + (100 - range.value) + "% 0 0)";
    line.style.left = range.value + "%";
  }
  function drag(e) {
    if (e.buttons) {
      var r = box.getBoundingClientRect();
      range.value = Math.round(100 * (e.clientX - r.left) / r.width);
      show();
    }
  }
  range.addEventListener("input", show);
  box.addEventListener("pointerdown", drag);
  box.addEventListener("pointermove", drag);
  show();
});
window.addEventListener("load", function () {
  var broken = [], boxes = [];
  Array.prototype.forEach.call(document.images, function (img) {
    if (!img.complete || img.naturalWidth === 0) broken.push(img.getAttribute("src"));
    var r = img.getBoundingClientRect();
    boxes.push([img.getAttribute("src"), Math.round(r.left), Math.round(r.top),
                Math.round(r.width), Math.round(r.height), img.closest(".compare") ? 1 : 0]);
  });
  var problems = window.pageErrors.concat(broken.map(function (s) { return "not loaded: " + s; }));
  var check = document.getElementById("page-check");
  check.textContent = problems.length ? "errors: " + problems.join("; ") : "ok: " + boxes.length + " images";
  check.setAttribute("data-boxes", JSON.stringify(boxes));
});
"""


def _page(title, sections):
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<script>{WATCH}</script><style>{STYLE}</style></head><body>\n<h1>{_e(title)}</h1>\n"
            "<p>Previews are HDR10 frames tone-mapped for an SDR screen (BT.2390 EETF to a "
            f"{PREVIEW_WHITE:.0f} cd/m2 white, sRGB); click one for the full size. Drag the slider to "
            "compare. The HDR10 PNG links show the real signal on an HDR screen.</p>\n"
            + "\n".join(sections)
            + f'\n<p id="page-check" hidden>not loaded</p><script>{SCRIPT}</script>\n</body></html>\n')
