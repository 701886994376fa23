"""Turn HDR sources into training pairs: random HR HDR10 patches and their LR SDR inputs.

For each frame (Kim et al., ICCV 2019, Sec. 4.1: SDR from HDR by a tone-mapping
operator, LR by bicubic downscaling):
  1. HDR ground truth: PQ BT.2020 R'G'B' quantised to 10-bit full-range codes;
  2. SDR: the source's master if it has one, else `sdr_synthesis` (BT.2446 Method A, ...);
  3. LR SDR: the whole SDR frame downscaled by `scale` with MATLAB-style bicubic
     (`resize.downscale`), quantised to 8 bits;
  4. `crops` random boxes of `patch` x `patch` HR pixels on the scale grid, with the
     matching (patch / scale)^2 LR boxes.
Output folder:
  shard-NNNNN.tfrecord  one per source, numbered in the sorted order of the sources
                        written, written under a hidden temporary name and renamed
                        when complete (`sritm_tf.fileio`); the next run removes the
                        temporaries a killed run left;
  manifest.jsonl        one JSON line per patch (shard, source, frame, box, operator,
                        operator_params, scale, seed), rewritten atomically after each source;
  prepare.json          the run's configuration.
Same inputs and seed -> byte-identical shards. A re-run skips sources already in the manifest.
"""
import dataclasses
import json
import os
import shutil
import sys
import zlib

import numpy as np

from sritm_tf import colour, fileio, imageio
from sritm_tf.data import records, resize, sdr_synthesis, sources
from sritm_tf.errors import InputError

MANIFEST = "manifest.jsonl"
CONFIG = "prepare.json"


@dataclasses.dataclass
class PrepareConfig:
    """Settings of one `prepare` run (stored in prepare.json)."""

    scale: int = 2
    kind: str = "auto"
    operator: str = "bt2446a"
    augment: bool = False
    patch: int = 160
    crops: int = 30
    stride: int = 30
    size: list | None = None  # [width, height] of raw .yuv
    seed: int = 0
    white_nits: float = 203.0
    max_frames: int | None = None

    def check(self):
        """InputError (a ValueError) for a setting out of range."""
        if self.scale not in (2, 4):
            raise InputError(f"scale must be 2 or 4, got {self.scale}")
        if self.patch <= 0 or self.patch % self.scale:
            raise InputError(f"patch {self.patch} must be a positive multiple of scale {self.scale}")
        if self.crops <= 0 or self.stride <= 0:
            raise InputError(f"--crops and --stride must be positive, got {self.crops} and {self.stride}")
        if self.operator not in sdr_synthesis.OPERATORS:
            raise InputError(f"unknown operator {self.operator!r}; choose from {sorted(sdr_synthesis.OPERATORS)}")


def shard_name(index):
    return f"shard-{index:05d}.tfrecord"


def source_rng(seed, source_path):
    """Random generator of one source: depends only on the seed and the source path."""
    return np.random.default_rng([int(seed), zlib.crc32(source_path.encode("utf-8"))])


def make_frame_pair(frame, scale, operator="bt2446a", params=None):
    """`sources.Frame` -> (LR SDR uint8 (H/s, W/s, 3), HR HDR uint16 (H, W, 3), operator name).

    The frame is first cropped (bottom/right) to a multiple of `scale`.
    """
    height = frame.hdr_pq.shape[0] // scale * scale
    width = frame.hdr_pq.shape[1] // scale * scale
    hdr_pq = frame.hdr_pq[:height, :width]
    hdr16 = imageio.hdr10_codes_to_uint16(colour.quantize(hdr_pq, 10))
    if frame.sdr is not None:
        sdr, name = frame.sdr[:height, :width], "master"
    else:
        sdr, name = sdr_synthesis.synthesize_sdr(hdr_pq, operator, params), operator
    sdr_lr = colour.quantize(np.clip(resize.downscale(sdr, scale), 0.0, 1.0), 8)
    return sdr_lr, hdr16, name


def random_boxes(height, width, patch, crops, scale, rng):
    """`crops` boxes [y, x, patch, patch] inside (height, width), with y, x multiples of `scale`."""
    if height < patch or width < patch:
        raise ValueError(f"frame {width}x{height} is smaller than the {patch}x{patch} patch")
    ys = rng.integers(0, (height - patch) // scale + 1, size=crops) * scale
    xs = rng.integers(0, (width - patch) // scale + 1, size=crops) * scale
    return [[int(y), int(x), patch, patch] for y, x in zip(ys, xs)]


def read_manifest(out_dir):
    path = os.path.join(out_dir, MANIFEST)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        try:
            rows = [json.loads(line) for line in f if line.strip()]
        except (json.JSONDecodeError, UnicodeDecodeError):
            rows = None
    if rows is None or not all(isinstance(r, dict) and {"source", "shard"} <= r.keys() for r in rows):
        raise InputError(f"{path}: not a manifest written by sritm prepare; use another output folder")
    return rows


def _write_source(source, shard_path, config, shard):
    """Write all patches of one source to `shard_path` (atomically); return manifest rows."""
    import tensorflow as tf

    rng = source_rng(config.seed, source.path)
    rows = []
    with fileio.atomic_path(shard_path) as tmp:
        with tf.io.TFRecordWriter(tmp) as writer:
            size = tuple(config.size) if config.size else None
            for frame in sources.iter_frames(source, config.white_nits, config.stride, size, config.max_frames):
                params = (
                    sdr_synthesis.sample_params(config.operator, rng)
                    if config.augment
                    else dict(sdr_synthesis.DEFAULT_PARAMS[config.operator])
                )
                sdr_lr, hdr16, op_name = make_frame_pair(frame, config.scale, config.operator, params)
                try:
                    boxes = random_boxes(*hdr16.shape[:2], config.patch, config.crops, config.scale, rng)
                except ValueError as err:
                    raise sources.SourceError(f"{source.path}: {err}") from None
                s = config.scale
                for y, x, h, w in boxes:
                    lr = sdr_lr[y // s : (y + h) // s, x // s : (x + w) // s]
                    hr = hdr16[y : y + h, x : x + w]
                    writer.write(records.encode_example(lr, hr, source.path, frame.index, [y, x, h, w], op_name))
                    rows.append({
                        "shard": shard,
                        "source": source.path,
                        "frame": frame.index,
                        "box": [y, x, h, w],
                        "operator": op_name,
                        "operator_params": params if op_name != "master" else {},
                        "scale": config.scale,
                        "seed": config.seed,
                    })
        if not rows:
            raise sources.SourceError(f"{source.path}: no frames")
    return rows


def prepare(paths, out_dir, config, overwrite=False, progress=True, log=None):
    """Prepare training shards from `paths` into `out_dir`; returns a summary dict.

    Summary: {"written": sources written now, "skipped": sources already done,
    "failed": [(path, message)], "patches": total patches in the manifest}.
    A file that cannot be used is reported and skipped; other sources go on.
    `overwrite=True` clears an output prepared with other settings.
    """
    from tqdm import tqdm

    config.check()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    fileio.check_folder_output(out_dir, "the output (-o)")
    try:  # before anything is written: sources that are not there leave no output
        found = sources.discover(paths, config.kind)
    except sources.SourceError as err:  # as an InputError, a ValueError as before
        raise InputError(str(err)) from None
    manifest = read_manifest(out_dir)  # a foreign manifest.jsonl: refused before prepare.json is written
    created = not os.path.exists(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    for name in os.listdir(out_dir):
        if fileio.is_temporary(name):
            fileio.remove(os.path.join(out_dir, name))
    config_path = os.path.join(out_dir, CONFIG)
    settings = dataclasses.asdict(config)
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as f:
            try:
                old = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise InputError(f"{config_path}: not written by sritm prepare; use another output folder") from None
        if old != settings:
            if not overwrite:
                raise InputError(
                    f"{out_dir}: prepared with other settings ({CONFIG}); use --overwrite or another folder"
                )
            for name in os.listdir(out_dir):
                if name.startswith("shard-") or name in (MANIFEST, CONFIG):
                    os.remove(os.path.join(out_dir, name))
            manifest = []
    fileio.write_text(config_path, json.dumps(settings, indent=2) + "\n")

    done = {row["source"] for row in manifest if os.path.exists(os.path.join(out_dir, row["shard"]))}
    manifest = [row for row in manifest if row["source"] in done]
    summary = {"written": 0, "skipped": 0, "failed": [], "patches": 0}
    next_index = 1 + max((int(row["shard"][6:11]) for row in manifest), default=-1)
    bar = tqdm(found, unit="source", disable=not progress, desc="prepare")
    for source in bar:
        if source.path in done:
            summary["skipped"] += 1
            continue
        shard = shard_name(next_index)
        bar.set_postfix_str(os.path.basename(source.path))
        try:
            rows = _write_source(source, os.path.join(out_dir, shard), config, shard)
        except sources.SourceError as err:
            summary["failed"].append((source.path, str(err)))
            bar.write(f"skipped: {err}", file=sys.stderr)
            continue
        manifest += rows
        next_index += 1
        fileio.write_text(os.path.join(out_dir, MANIFEST), "".join(json.dumps(r) + "\n" for r in manifest))
        summary["written"] += 1
    bar.close()
    summary["patches"] = len(manifest)
    if created and not manifest:  # nothing usable: leave no folder holding only prepare.json
        shutil.rmtree(out_dir, ignore_errors=True)
    return summary
