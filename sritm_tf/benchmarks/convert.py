"""Frames per second of each stage of `sritm convert` of a real clip to HEVC, and of the whole.

    KERAS_BACKEND=jax sritm bench convert clip.mp4 --precision bf16 --preset fast medium

The network runs where the Keras backend puts it: JAX's first device (a GPU where JAX has one,
else JAX's CPU device), through `sritm_tf.device_pipeline`; or TensorFlow on the CPU.

Each stage is timed alone, one after the other, on the same frames (the clip's first
`--frames`), each fed what the stage before made and kept in memory, so that a stage's rate is
its own and not its neighbours' (on a host of few cores, the stages of the real pipeline share
them, and the whole is slower than its slowest stage):

| stage | what is timed |
| --- | --- |
| decode | PyAV decoding to R'G'B' (`video.sources.VideoSource`) |
| colour in | R'G'B' -> the network's Y'CbCr (`FrameConverter.network_input`) |
| to device | `jax.device_put` of each batch until it is there (`block_until_ready`) |
| network | the network on batches already on the device, compiled before (`block_until_ready`) |
| from device | `np.asarray` of each batch's output |
| colour out | output Y'CbCr -> PQ R'G'B' (`FrameConverter.signal`), in the pipeline's colour threads |
| packing | 10-bit 4:2:0 planes and light levels (`hdr10.pq_rgb_to_yuv10`, `LightLevels`), one thread |
| encode | those frames through the HEVC writer (packing, NUT pipe, ffmpeg, x265), until the file is closed, per `--preset` |

On TensorFlow the network row is `TiledPredictor` per frame and there is no device copy. The
whole is `convert.encode_frames` of the same frames from the file to an .mkv (the network already
compiled), per preset, as `sritm convert` runs it; the stage that limits is the one of the lowest rate.
Prints the device, versions and settings, and a markdown table.
"""
import os
import subprocess
import tempfile
import time

from sritm_tf.commands import options

STAGES = ("decode", "colour in", "to device", "network", "from device", "colour out", "packing", "encode")


def add_arguments(p):
    p.add_argument("clip", help="an SDR video (anything ffmpeg reads)")
    options.add_scale(p)
    options.add_weights(p)
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="network compute precision (default auto, as sritm convert)")
    p.add_argument("--tile", metavar="N|WxH", help="LR tile (default: whole frames on a GPU where they fit, "
                   "else the precision's default)")
    p.add_argument("--batch-size", type=int, help="frames per device batch (default: as sritm convert picks)")
    p.add_argument("--frames", type=int, help="frames of the clip to time (default: all; each stage keeps them in memory)")
    p.add_argument("--crf", type=int, default=18, help=options.CRF_HELP)
    p.add_argument("--preset", nargs="+", default=["medium"],
                   help="x265 preset(s): the encode stage and the whole are timed with each (default medium)")


def timed(fn, items):
    """([fn(item) for item in items], seconds)."""
    t0 = time.perf_counter()
    out = [fn(item) for item in items]
    return out, time.perf_counter() - t0


class Clip:
    """The first `limit` frames of a `convert.open_source(path)` as a source of `encode_frames`."""

    def __init__(self, source, limit):
        self.source, self.limit = source, limit
        for name in ("path", "frame_rate", "time_base", "start_offset", "width", "height", "has_audio",
                     "audio_codecs", "sample_aspect_ratio"):
            setattr(self, name, getattr(source, name, None))
        self.frame_count = limit

    def __iter__(self):
        for index, item in enumerate(self.source):
            if self.limit is not None and index >= self.limit:
                return
            yield item


def device_stages(pipe, inputs):
    """{stage: seconds} of to device, network and from device on JAX, and the network outputs."""
    import jax

    tile, batch = pipe.plan(*inputs[0].shape[:2])
    from sritm_tf.device_pipeline import stacked

    batches = [stacked(inputs[i:i + batch], batch) for i in range(0, len(inputs), batch)]
    jax.block_until_ready(pipe.predictor(jax.device_put(batches[0], pipe.predictor.device), tile))  # compiles
    sent, t_put = timed(lambda b: jax.device_put(b, pipe.predictor.device).block_until_ready(), batches)
    outs, t_net = timed(lambda x: pipe.predictor(x, tile).block_until_ready(), sent)
    hosts, t_get = timed(lambda y: jax.device_get(y), outs)
    frames = [frame for host in hosts for frame in host][:len(inputs)]
    return {"to device": t_put, "network": t_net, "from device": t_get}, frames


def measure(args, clip, work):
    """{stage: seconds}, whole seconds, frames and the settings of one run."""
    import concurrent.futures

    from sritm_tf import convert, device_pipeline
    from sritm_tf.inference import parse_tile
    from sritm_tf.precision import keras_backend, resolve
    from sritm_tf.video import geometry, hdr10, mastering

    precision, _ = resolve(args.precision)
    tile = parse_tile(args.tile, "--tile") if args.tile else None
    conv = convert.FrameConverter(args.scale, args.weights, tile=tile, precision=precision, engine="tf")
    source = Clip(convert.open_source(clip), args.frames)
    fitted, width, height = geometry.fit(source, conv, args.scale)
    jax = device_pipeline.applies(fitted)
    pipe = device_pipeline.Pipeline(fitted, args.batch_size) if jax else None
    seconds = {}
    items, seconds["decode"] = timed(lambda item: item, source)
    rgbs, stamps = [rgb for rgb, _ in items], [pts for _, pts in items]
    inputs, seconds["colour in"] = timed(conv.network_input, rgbs)
    if jax:
        device, outputs = device_stages(pipe, inputs)
        seconds.update(device)
        signal, workers = pipe.signal, pipe.workers
    else:
        outputs, seconds["network"] = timed(conv.predict, inputs)
        signal, workers = (conv.signal if fitted is conv else lambda y: geometry.resize(conv.signal(y), (width, height))), 1
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        t0 = time.perf_counter()
        signals = list(pool.map(signal, outputs))
        seconds["colour out"] = time.perf_counter() - t0
    levels = hdr10.LightLevels()
    _, seconds["packing"] = timed(lambda s: (hdr10.pq_rgb_to_yuv420p10(s), levels.update(s)), signals)
    for preset in args.preset:
        writer = mastering.open_writer(os.path.join(work, "stages.mkv"), "mkv", "hevc", width, height, source,
                                       "stages.mkv", args.crf, preset)
        t0 = time.perf_counter()
        for s, pts in zip(signals, stamps):
            writer.write(s, pts)
        writer.close()
        seconds[f"encode {preset}"] = time.perf_counter() - t0
    del items, rgbs, inputs, outputs, signals
    whole = {}
    for preset in args.preset:
        writer = mastering.open_writer(os.path.join(work, "whole.mkv"), "mkv", "hevc", width, height, source,
                                       "whole.mkv", args.crf, preset)
        t0 = time.perf_counter()
        frames, _ = convert.encode_frames(source, writer, fitted, progress=False)
        whole[preset] = time.perf_counter() - t0
    settings = {"backend": keras_backend(), "precision": precision, "size": (source.width, source.height, width, height),
                "tile": pipe.planned[0] if jax else conv.predict.tile, "batch": pipe.planned[1] if jax else 1,
                "workers": workers}
    return seconds, whole, frames, settings


def device_line():
    """The device, the versions of what runs the network and the encoder."""
    import keras

    if keras.config.backend() == "jax":
        import jax

        d = jax.devices()[0]
        where = f"{d.device_kind} ({d.platform}), jax {jax.__version__}"
    else:
        import tensorflow as tf

        where = f"CPU, tensorflow {tf.__version__}"
    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    return f"device: {where}, keras {keras.__version__}, {os.cpu_count()} CPU cores; {' '.join(ffmpeg.split()[:3])}"


def run(args):
    from sritm_tf.convert import check_input
    from sritm_tf.video.hdr10 import check_encoder

    check_input(args.clip)
    for preset in args.preset:
        check_encoder(args.crf, preset)
    with tempfile.TemporaryDirectory(prefix="sritm-bench-convert-") as work:
        seconds, whole, frames, s = measure(args, args.clip, work)
    print(device_line())
    w, h, ow, oh = s["size"]
    print(f"x{args.scale} {s['precision']} on {s['backend']}: {w}x{h} -> {ow}x{oh} HEVC (x265 --crf {args.crf}), "
          f"{frames} frames, tile {s['tile'][1]}x{s['tile'][0]}, batch {s['batch']}, {s['workers']} colour threads")
    print("| stage | frames/s | ms/frame |")
    print("|---|---|---|")
    rates = {}
    for stage in STAGES[:-1] + tuple(f"encode {p}" for p in args.preset):
        if stage not in seconds:
            print(f"| {stage} | (in network) | |")
            continue
        rates[stage] = frames / max(seconds[stage], 1e-9)
        print(f"| {stage.replace('encode ', 'encode, x265 --preset ')} | {rates[stage]:.2f} | "
              f"{1000 * seconds[stage] / frames:.1f} |")
    for preset, t in whole.items():
        print(f"| **whole, x265 --preset {preset}** | **{frames / t:.2f}** | {1000 * t / frames:.1f} |")
    for preset, t in whole.items():
        stages = {k: v for k, v in rates.items() if not k.startswith("encode ") or k == f"encode {preset}"}
        limit = min(stages, key=stages.get)
        print(f"x265 --preset {preset}: limit {limit.split(' ')[0] if limit.startswith('encode') else limit} "
              f"({stages[limit]:.2f} frames/s); the whole ran at {frames / t:.2f} frames/s")
    return 0
