"""SDR -> HDR10 conversion of images and videos: `convert_image`, `convert_video`.

Each frame: SDR R'G'B' in BT.709 primaries (8 to 16 bits, `video.sources`; upright,
`video.geometry`) -> network input (full-range BT.709 Y'CbCr) -> Deep SR-ITM, tiled
(`sritm_tf.inference`) -> BT.2020 NCL Y'CbCr of PQ R'G'B', `scale`x larger -> PQ R'G'B'
clipped to [0, 1] (resized to square pixels or `size`, `video.geometry`) -> the output file:

- `.png`: 16-bit RGB, BT.2020, PQ, full range (10-bit codes scaled to 16 bits,
  see `sritm_tf.imageio`);
- `.yuv`: raw yuv420p10le, BT.2020 NCL, limited range, no header;
- `.mp4` / `.mkv`: HEVC Main10 HDR10 (x265) or AV1 10-bit, `.mov`: ProRes 422 HQ or 4444
  (`video.mastering`), fed through a pipe as the frames are converted (no uncompressed
  intermediate), with MaxCLL / MaxFALL measured on the converted frames and written at the
  end, and the source's audio, subtitles, chapters and timecode (`video.carry`);
- `out/frame_%06d.png` / `.tif`: a 16-bit image sequence, resumable (`video.sequences`).

`baseline=True` replaces the network by the classical mapping: bicubic upscale,
then SDR placed in HDR10 at `white_nits` (`colour.sdr_to_hdr10_baseline`).
`white_nits` is also the SDR reference white of the network's classical skip.
No output pixel exceeds `peak_nits` (default 1000 cd/m2, the mastering peak of
the bundled weights' training targets); the HDR10 metadata follows the frames.

Outputs are written under a temporary name in the output folder and renamed at
the end; an existing output is only replaced with `overwrite=True`.
"""
import contextlib
import errno
import math
import numbers
import os
import queue
import threading
from fractions import Fraction

import numpy as np

from sritm_tf import colour, device_pipeline, fileio, imageio, signals
from sritm_tf.errors import (AccessError, FolderError, InputError, MissingFileError, NoFolderError,
                             OutputExistsError, SritmError)
from sritm_tf.inference import DEFAULT_TILES, TiledPredictor, parse_tile
from sritm_tf.sizes import parse_size
from sritm_tf.video import geometry, hdr10, mastering, sequences, sources

OUTPUT_FORMATS = ("png", "yuv", "mp4", "mkv", "mov")
PEAK_NITS = 1000.0  # cd/m2: mastering peak of the output (ST 2086 follows the content)
CONTAINERS = {"mp4": "mp4", "mkv": "matroska", "mov": "mov"}


def output_format(output, format=None):
    """The output format: `format` if given, else from the extension of `output`."""
    if sequences.is_pattern(output):  # out/frame_%06d.tif
        return sequences.output_format(output, format)
    fmt = (format or os.path.splitext(output)[1].lstrip(".")).lower()
    if fmt not in OUTPUT_FORMATS:
        raise InputError(f"{output}: unknown output format {fmt!r}; use one of "
                         f"{', '.join('.' + f for f in OUTPUT_FORMATS)} or --format")
    return fmt


def check_fps(fps):
    """The frame rate of a raw .yuv or image input, a Fraction: `fps` (in (0, 1000]), or 25 when None.
    A decimal rate is kept as the nearest fraction with a denominator up to 1001 (29.97 -> 2997/100)."""
    if fps is None:
        return Fraction(25)
    if not (isinstance(fps, numbers.Real) and math.isfinite(fps) and 0 < fps <= 1000):
        raise InputError(f"--fps: expected a frame rate in (0, 1000] such as 25 or 23.976, got {fps!r}")
    return Fraction(fps).limit_denominator(1001)


def check_input(input):
    """Fails early if `input` is not a regular file: a folder is named as one, and so is a
    device, pipe or socket."""
    if sequences.is_pattern(input):  # frame_%06d.tif: at least one file, no gap
        return sequences.check_input(input)
    if os.path.isdir(input):
        raise FolderError(f"{input}: is a folder; give one image or video file")
    if os.path.exists(input) and not os.path.isfile(input):
        raise MissingFileError(f"{input}: not a regular file (a device, pipe or socket); give an image or video file")
    if not os.path.isfile(input):
        raise MissingFileError(f"{input}: no such file")


def check_output(output, overwrite=False, input=None):
    """Fails early, before any work, if `output` cannot be written, or is `input` itself
    (refused even with `overwrite`, as ffmpeg refuses it)."""
    folder = os.path.dirname(os.path.abspath(output))
    if os.path.isdir(output):
        raise FolderError(f"{output}: is a folder")
    if input is not None and os.path.exists(output) and os.path.exists(input) and os.path.samefile(input, output):
        raise OutputExistsError(f"{output}: is the input file; write the output to another file")
    sequences.check_output(output, input)
    if os.path.exists(output) and not overwrite:
        raise OutputExistsError(f"{output}: exists (pass --overwrite to replace it)")
    if not os.path.isdir(folder):
        raise NoFolderError(f"{output}: output folder {folder} does not exist")
    probe = fileio.temporary_path(output)
    try:
        open(probe, "wb").close()
        os.remove(probe)
    except OSError as err:
        raise AccessError(f"{output}: cannot write in folder {folder} ({err.strerror})") from None


@contextlib.contextmanager
def disk_full_is_one_line(output):
    """A full disk while writing `output` (or its temporaries) is the SritmError
    "<output>: no space left on device"; the writers have removed what they wrote."""
    try:
        yield
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        raise SritmError(f"{output}: no space left on device") from None


def bicubic_upscale(rgb, scale):
    """Bicubic upscaling (Keys a = -0.5, half-pixel centres, edge replication:
    the network's own skip branch), R'G'B' float (H, W, 3) -> (sH, sW, 3)."""
    from sritm_tf.layers import BicubicUpsample

    up = BicubicUpsample(scale)(np.asarray(rgb, np.float32)[None])
    return np.clip(np.asarray(up)[0], 0.0, 1.0)


def check_transfer(transfer):
    """Refuses an output transfer other than "pq" (HDR10) and "hlg" (BT.2100 HLG)."""
    if transfer not in colour.TRANSFERS:
        raise InputError(f"--transfer: expected one of {', '.join(colour.TRANSFERS)}, got {transfer!r}")
    return transfer


def check_levels(white_nits, peak_nits, transfer="pq"):
    """Refuses white and peak levels outside (0, 10000] cd/m2, and a peak above the 1000 cd/m2
    display that HLG output is for (BT.2100; `colour.pq_to_hlg` clips there)."""
    if not 0 < white_nits <= colour.PQ_PEAK or not 0 < peak_nits <= colour.PQ_PEAK:
        raise InputError(f"white and peak levels must be in (0, 10000] cd/m2, got {white_nits} and {peak_nits}")
    if transfer == "hlg" and peak_nits > colour.HLG_NOMINAL_PEAK:
        raise InputError(f"peak {peak_nits:g} cd/m2 with HLG output: HLG is for a 1000 cd/m2 display (BT.2100), "
                         "so its peak is at most 1000")


class FrameConverter:
    """Callable: SDR R'G'B' frame (uint8, or float in [0, 1]) -> HDR10 PQ BT.2020
    R'G'B' float32 in [0, 1], `scale`x larger; with `transfer="hlg"`, that PQ frame
    transcoded to BT.2100 HLG for a 1000 cd/m2 display (`colour.pq_to_hlg`).

    `weights`: path of weights or a loaded keras.Model (see
    `pretrained.load_model`); `precision`: "fp32", "bf16" (`sritm_tf.precision`)
    or "int8" (LiteRT or OpenVINO); `engine`: "tf", "openvino", "litert" or "auto"
    (`sritm_tf.engines`); `tile`: LR tile size (N, "WxH" or (height, width));
    None: `inference.DEFAULT_TILES[precision]`.
    """

    def __init__(self, scale=2, weights=None, baseline=False, tile=None, white_nits=203.0,
                 peak_nits=PEAK_NITS, precision="fp32", engine="tf", transfer="pq"):
        self.transfer = check_transfer(transfer)
        if scale not in (2, 4):
            raise InputError(f"scale must be 2 or 4, got {scale}")
        check_levels(white_nits, peak_nits, transfer)
        self.scale, self.baseline, self.white_nits = scale, baseline, white_nits
        # The cap as a float32 rounded down, so that no output pixel decodes brighter than peak_nits
        # (rounded up, 1000 cd/m2 became a MaxCLL of 1001 and a 4000 cd/m2 mastering display).
        peak = float(colour.pq_inverse_eotf(peak_nits))
        cap = np.float32(peak)
        self.pq_peak = cap if float(cap) <= peak else np.nextafter(cap, np.float32(0))
        if not baseline:
            from sritm_tf import pretrained

            from sritm_tf import engines

            engine, _ = engines.resolve(engine, precision)
            tile = parse_tile(tile or DEFAULT_TILES[precision])
            model = pretrained.load_model(scale, weights, white_nits=white_nits,
                                          precision=engines.model_precision(engine, precision))
            self.engine = engine
            self.predict = TiledPredictor(model, tile, run=engines.runner(model, engine, precision))

    def __call__(self, rgb):
        if self.baseline:
            rgb = np.asarray(rgb)
            rgb = rgb / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float64)
            return self.signal(colour.sdr_to_hdr10_baseline(bicubic_upscale(rgb, self.scale), self.white_nits),
                               pq=True)
        return self.signal(self.predict(self.network_input(rgb)))

    @staticmethod
    def network_input(rgb):
        """SDR R'G'B' (uint8, or float in [0, 1]) -> the network's input, float32 full-range BT.709 Y'CbCr."""
        rgb = np.asarray(rgb)
        rgb = rgb / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float64)
        return colour.sdr_rgb_to_model_yuv(rgb).astype(np.float32)

    def signal(self, hdr, pq=False):
        """The network's output (BT.2020 NCL Y'CbCr of PQ R'G'B'; `pq`: PQ R'G'B' already) -> the
        output signal, float32, capped at the peak, in the output transfer."""
        pq = hdr if pq else colour.model_yuv_to_pq2020_rgb(hdr)
        pq = np.minimum(pq.astype(np.float32), self.pq_peak)
        return pq if self.transfer == "pq" else colour.pq_to_hlg(pq).astype(np.float32)


def convert_image(input, output, scale=2, weights=None, baseline=False, overwrite=False,
                  tile=None, white_nits=203.0, peak_nits=PEAK_NITS, precision="fp32", engine="tf", transfer="pq",
                  format=None, size=None):
    """Converts an 8-bit SDR image to a `scale`x larger 16-bit HDR10 PNG.

    Args:
        input: an 8-bit PNG, JPEG or TIFF (RGB, RGBA with alpha dropped, grey).
        output: the .png to write: 16-bit R'G'B', BT.2020, PQ, full range.
        scale: 2 or 4.
        weights: path (.npz, .keras, .weights.h5) or keras.Model; None: the bundled weights.
        baseline: the classical conversion (bicubic + BT.2408) instead of the network.
        overwrite: replace an existing `output`.
        tile: LR tile (N, "WxH" or (height, width)); None: the precision's default.
        white_nits: SDR reference white, cd/m2 (the classical skip's and the baseline's).
        peak_nits: no output pixel brighter, cd/m2.
        precision: "fp32" or "bf16" (`sritm_tf.precision`), or "int8" (LiteRT or OpenVINO).
        engine: "tf", "openvino", "litert" or "auto" (`sritm_tf.engines`).
        transfer: "pq" (HDR10) or "hlg" (BT.2100 HLG, 1000 cd/m2 nominal peak); the
            PNG's cICP chunk signals it.
        format: "png", or None: from the extension of `output` (as ffmpeg's -f).
        size: the output size "WxH" or (w, h) (`geometry.resize` after the network); None: scale x.

    Returns:
        The BT.2020 R'G'B' written (PQ or HLG), float32 (sH, sW, 3).
    """
    input, output = os.fspath(input), os.fspath(output)
    check_input(input)
    rgb = imageio.read_sdr_image(input)  # EXIF orientation applied
    if output_format(output, format) != "png":
        raise InputError(f"{output}: convert_image writes .png; use convert_video for .yuv/.mp4/.mkv")
    check_output(output, overwrite, input)
    width, height, _ = geometry.output_size(rgb.shape[1], rgb.shape[0], 1, scale, size)
    signal = FrameConverter(scale, weights, baseline, tile, white_nits, peak_nits, precision, engine, transfer)(rgb)
    signal = geometry.resize(signal, (width, height))
    with disk_full_is_one_line(output):
        imageio.write_hdr_png(output, signal, transfer)
    return signal


def open_source(input, input_size=None, fps=None, allow_truncated=False, field_order="auto", deinterlace="frame"):
    """A frame source for `input`: raw .yuv (needs `input_size` "WxH" or (w, h)), a
    still image (one frame), or a video file (PyAV; `sources.VideoSource` for `allow_truncated`,
    `field_order` and `deinterlace`),
    turned upright (`geometry.oriented`)."""
    input = os.fspath(input)
    check_input(input)
    if sequences.is_pattern(input):
        return geometry.oriented(sequences.open_sequence(input, check_fps(fps), allow_truncated))
    if input.lower().endswith(".yuv"):
        if input_size is None:
            raise InputError(f"{input}: raw .yuv input needs its frame size (--input-size WxH)")
        width, height = (parse_size(input_size, "--input-size") if isinstance(input_size, str)
                         else (int(v) for v in input_size))
        return sources.YuvSource(input, width, height, check_fps(fps))
    if imageio.is_image(input):
        return sources.ImageSource(imageio.read_sdr_image(input), input, check_fps(fps))
    return geometry.oriented(sources.VideoSource(input, allow_truncated, field_order=field_order,
                                                 deinterlace=deinterlace))


_put = device_pipeline.put  # a bounded queue's put that gives up once `stop` is set


def _run_pipeline(source, convert, write, progress=True, desc=None):
    """Decode (thread) -> convert (this thread) -> write (thread), with bounded
    queues between them and a tqdm bar (frames, fps, ETA). Returns the frame count."""
    from tqdm.auto import tqdm

    decoded, converted = queue.Queue(maxsize=4), queue.Queue(maxsize=4)
    stop, errors = threading.Event(), []

    def decode():
        try:
            for item in source:
                if not _put(decoded, item, stop):
                    return
        except BaseException as err:  # handed to the main thread
            errors.append(err)
        finally:
            _put(decoded, None, stop)

    def encode():
        while (item := converted.get()) is not None:
            if not errors:
                try:
                    write(*item)
                except BaseException as err:
                    errors.append(err)
                    stop.set()

    threads = [threading.Thread(target=decode, daemon=True), threading.Thread(target=encode, daemon=True)]
    for thread in threads:
        thread.start()
    count = 0
    try:
        with tqdm(total=source.frame_count, unit="frame", desc=desc, disable=not progress) as bar:
            while not errors:
                signals.check()  # between frames: a SIGTERM whose raise was lost stops here
                try:
                    item = decoded.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is None:
                    break
                rgb, pts = item
                if pts is None:
                    pts = round(count / source.frame_rate / source.time_base)
                _put(converted, (convert(rgb), pts), stop)
                count += 1
                bar.update()
    finally:
        converted.put(None)
        threads[1].join()
        stop.set()
        threads[0].join()
    if errors:
        raise errors[0]
    return count


def encode_frames(source, writer, convert, progress=True, desc=None):
    """Converts the frames of `source` and hands each to `writer` as it is made: the
    frames are never all held, in memory or on disk (a few in flight in the stage queues).

    Args:
        source: iterable of (rgb, pts) with `frame_rate`, `time_base` and `frame_count`
            (a `sources.VideoSource`, or any range of frames, such as one segment of a title).
        writer: `hdr10.HevcWriter` or `hdr10.Yuv420p10Writer`: closed at the end, aborted
            if anything fails.
        convert: a `FrameConverter`.

    Returns:
        (frames written, `hdr10.LightLevels` of them; None for HLG, which has no such metadata).
    """
    levels = hdr10.LightLevels() if getattr(convert, "transfer", "pq") == "pq" else None

    def write(signal, pts):
        if levels is not None:
            levels.update(signal)
        writer.write(signal, pts)

    try:
        run = device_pipeline.run_pipeline if device_pipeline.applies(convert) else _run_pipeline  # JAX: batched
        frames = run(source, convert, write, progress, desc)
        if frames == 0 and not getattr(source, "skipped", 0):  # an output sequence's frames may all exist
            raise InputError(f"{getattr(source, 'path', 'input')}: no video frames decoded")
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return frames, levels


def convert_video(input, output, scale=2, weights=None, baseline=False, overwrite=False,
                  tile=None, format=None, input_size=None, fps=None, white_nits=203.0, peak_nits=PEAK_NITS,
                  precision="fp32", engine="tf", size=None,
                  progress=True, crf=18, preset="medium", allow_truncated=False, transfer="pq", codec=None,
                  field_order="auto", deinterlace="frame"):
    """Converts an SDR video to HDR10, `scale`x larger, keeping the source frame rate,
    timestamps and audio.

    Args:
        input: any SDR video ffmpeg decodes, a raw 8-bit yuv420p file (with `input_size`
            "WxH" and `fps`), an image sequence (`frame_%06d.tif`, at `fps`), or a still image.
        output: `.yuv` (raw yuv420p10le, BT.2020 NCL, limited range) or `.mp4` /
            `.mkv` (HEVC Main10 through x265, HDR10 signalling, ST 2086, MaxCLL/MaxFALL; or AV1 10-bit),
            `.mov` (ProRes 422 HQ or 4444, the same metadata), with the source's audio, subtitles,
            chapters, tags and timecode (`video.carry`), or a 16-bit image sequence
            `out/frame_%06d.png` / `.tif` (`sequences.convert_to_sequence`: frames already written
            are skipped unless `overwrite`).
        scale, weights, baseline, overwrite, tile, white_nits, peak_nits, precision,
            engine: as `convert_image`.
        format: the output format when `output` has no telling extension.
        input_size, fps: of a raw .yuv input.
        size: the output frame size "WxH" or (w, h), as ffmpeg's -s; None: `scale` x the source's,
            resized to square pixels if it is anamorphic (`geometry.output_size`).
        progress: show a progress bar.
        crf, preset: x265's (checked before any frame is decoded; SVT-AV1 takes the crf, and the
            preset of like speed).
        allow_truncated: convert the frames of a damaged or truncated video that
            decode, instead of failing.
        transfer: "pq" (HDR10) or "hlg" (BT.2100 HLG, 1000 cd/m2 nominal peak,
            signalled arib-std-b67 / bt2020 / bt2020nc, no HDR10 static metadata).
        codec: of a .mkv / .mp4 / .mov output: "hevc" or "av1" (.mkv, .mp4), "prores422hq" or
            "prores4444" (.mov); None: hevc, or prores422hq in .mov (`mastering.output_codec`).
        field_order, deinterlace: of an interlaced video (`sources.VideoSource`): "auto", "tff",
            "bff" or "progressive"; "frame" (the source's rate) or "field" (twice it).

    Returns:
        A dict: frames, width, height, max_cll, max_fall (cd/m2; PQ only), and
        truncated (frames decoded, frames the container lists or, for Matroska, about how
        many its listed duration holds) if it was.
    """
    input, output = os.fspath(input), os.fspath(output)
    hdr10.check_encoder(crf, preset)  # before any frame is decoded
    check_transfer(transfer)
    source = open_source(input, input_size, fps, allow_truncated, field_order, deinterlace)
    fmt = output_format(output, format)
    codec = mastering.output_codec(output, fmt, codec)
    geometry.check_size(size, fmt)
    if fmt == "png":
        raise InputError(f"{output}: a video is converted to .yuv, .mp4, .mkv or .mov, not .png")
    check_output(output, overwrite, input)
    convert = FrameConverter(scale, weights, baseline, tile, white_nits, peak_nits, precision, engine, transfer)
    convert, width, height = geometry.fit(source, convert, scale, size)
    if fmt in sequences.FORMATS:  # one file per frame, each whole: a re-run resumes
        with disk_full_is_one_line(output):
            return sequences.convert_to_sequence(source, output, convert, encode_frames, (width, height),
                                                 overwrite, progress)
    with disk_full_is_one_line(output), fileio.atomic_path(output) as tmp:
        if fmt == "yuv":
            writer = hdr10.Yuv420p10Writer(tmp, width, height)
        else:
            writer = mastering.open_writer(tmp, fmt, codec, width, height, source, output, crf, preset, transfer)
        frames, levels = encode_frames(source, writer, convert, progress, desc=os.path.basename(input))
        if fmt != "yuv":
            mastering.write_light_levels(tmp, fmt, codec, levels, name=output)  # MaxCLL / MaxFALL are known now
    result = {"frames": frames, "width": width, "height": height}
    if levels is not None:
        result.update(max_cll=levels.max_cll, max_fall=levels.max_fall)
    if getattr(source, "truncated", None):
        result["truncated"] = source.truncated
    return result


def convert(input, output, format=None, **kwargs):
    """`convert_image` for an image to .png, `convert_video` for everything else."""
    input, output = os.fspath(input), os.fspath(output)
    check_input(input)
    if imageio.is_image(input) and not sequences.is_pattern(input) and output_format(output, format) == "png":
        video_only = {"input_size", "fps", "progress", "crf", "preset", "allow_truncated", "codec", "field_order",
                      "deinterlace"}
        convert_image(input, output, format=format, **{k: v for k, v in kwargs.items() if k not in video_only})
        return {"frames": 1}
    return convert_video(input, output, format=format, **kwargs)
