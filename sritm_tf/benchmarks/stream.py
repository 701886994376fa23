"""Peak temporary disk and peak RSS of a streamed video conversion, extrapolated to one minute of 1080p -> 4K.

A short synthetic SDR clip (testsrc2, 24 fps) at each of two small sizes is converted in a
fresh Python process (`convert_video` to HEVC, the classical conversion unless --network),
which measures:

- peak temporary disk: the largest total size of the files beside the output while it
  converts (polled every 2 ms). Frames are piped into x265 as they are made, so this is the
  hidden, partial compressed output itself: no uncompressed frame goes to disk;
- peak RSS of the converting process (ru_maxrss), and of its encoder (ffmpeg with x265: the
  VmHWM of the child processes, polled).

Extrapolation to T = 60 s of 3840x2160 output at 24 fps (N = 1440 frames, P = 8,294,400 pixels):

    disk(4K, 1 min) = d * N * P,  d = peak temporary bytes / (frames * output pixels)
                      (the compressed stream's bytes per output pixel, from the larger size;
                      it depends on the content and --crf: testsrc2 compresses well)
    RSS(4K)         = a + b * P,  the line through the two measured (output pixels, peak RSS),
                      b >= 0 (RSS does not grow with the length: the frames in flight are bounded)
    replaced        = N * P * 3 bytes: the uncompressed yuv420p10le intermediate of before

    sritm bench stream                               # LR 160x90 and 320x180, 48 frames, classical
    sritm bench stream --network --precision fp32    # the bundled network (slow on a CPU)

Prints a markdown table (one row per size) and the extrapolated line.
"""
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

from sritm_tf.benchmarks import ChildError, run_child
from sritm_tf.commands import options
from sritm_tf.sizes import parse_size

MINUTE_4K_FRAMES, PIXELS_4K = 60 * 24, 3840 * 2160


def measure(clip, output, scale, network, precision, crf, preset):
    """Runs in the child: converts `clip` to `output`, polling the output folder; a dict of the peaks."""
    from sritm_tf import convert

    folder, peak, encoder, done = os.path.dirname(output), [0], {}, threading.Event()

    def poll():
        while not done.is_set():
            for pid in _children():
                encoder[pid] = max(encoder.get(pid, 0), _peak_rss_kib(pid))
            total = 0
            with os.scandir(folder) as entries:
                for entry in entries:
                    try:
                        total += entry.stat().st_size
                    except FileNotFoundError:  # renamed meanwhile
                        pass
            peak[0] = max(peak[0], total)
            time.sleep(0.002)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        result = convert.convert_video(clip, output, scale=scale, baseline=not network, precision=precision,
                                       crf=crf, preset=preset, progress=False)
    finally:
        done.set()
        poller.join()
    return {"frames": result["frames"], "pixels": result["width"] * result["height"], "peak_tmp": peak[0],
            "output": os.path.getsize(output),
            "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # kB on Linux
            "encoder_rss": max(encoder.values(), default=0) / 1024}


def _children():
    """The pids of this process's children (Linux /proc)."""
    pids = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return pids


def _peak_rss_kib(pid):
    """VmHWM (peak resident set) of process `pid` in KiB once it runs ffmpeg (before its exec it is a
    copy of this process), else 0."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return 0
    if status.get("Name", "").strip() != "ffmpeg":
        return 0
    return int(status.get("VmHWM", "0 kB").split()[0])


def add_arguments(parser):
    parser.add_argument("--sizes", nargs=2, metavar="WxH", default=["160x90", "320x180"],
                        help="the two LR clip sizes (default 160x90 320x180)")
    parser.add_argument("--frames", type=int, default=48, help="frames per clip (default 48: 2 s)")
    options.add_scale(parser)
    parser.add_argument("--network", action="store_true", help="the bundled network (default: the classical conversion)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--crf", type=int, default=18, help=options.CRF_HELP)
    parser.add_argument("--preset", default="medium", help=options.PRESET_HELP)
    parser.add_argument("--format", choices=("mkv", "mp4"), default="mkv")


def _mib(n):
    return n / 2**20


def run(args):
    sizes = [parse_size(s, "--sizes") for s in args.sizes]
    if sizes[0] == sizes[1]:
        raise SystemExit("--sizes: give two different sizes (the RSS line goes through both)")
    what = f"network {args.precision}" if args.network else "classical"
    print(f"x{args.scale}, {args.frames} frames at 24 fps, {what}, x265 --preset {args.preset} --crf {args.crf}, "
          f".{args.format}")
    print("| LR | HR | peak temp disk KiB | output KiB | raw frame KiB | peak RSS MiB | encoder RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    with tempfile.TemporaryDirectory(prefix="sritm-bench-stream-") as work:
        for width, height in sizes:
            clip, out_dir = os.path.join(work, f"sdr_{width}x{height}.mp4"), os.path.join(work, f"out_{width}x{height}")
            os.mkdir(out_dir)
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                            f"testsrc2=size={width}x{height}:rate=24", "-frames:v", str(args.frames),
                            "-c:v", "libx264", "-pix_fmt", "yuv420p", clip], check=True)
            job = {"clip": clip, "output": os.path.join(out_dir, f"o.{args.format}"), "scale": args.scale,
                   "network": args.network, "precision": args.precision, "crf": args.crf, "preset": args.preset}
            try:
                m = run_child("stream", job)
            except ChildError as e:
                print(e.tail(1), file=sys.stderr)
                print(f"| {width}x{height} | failed (exit {e.returncode}) | | | | | |")
                return 1
            rows.append(m)
            hr = f"{width * args.scale}x{height * args.scale}"
            print(f"| {width}x{height} | {hr} | {m['peak_tmp'] / 1024:.1f} | {m['output'] / 1024:.1f} | "
                  f"{m['pixels'] * 3 / 1024:.1f} | {m['rss']:.0f} | {m['encoder_rss']:.0f} |", flush=True)
    (p0, small), (p1, large) = [(m["pixels"], m) for m in rows]
    per_pixel = large["peak_tmp"] / (large["frames"] * p1)

    def line(key):  # through the two sizes, never falling with the frame size (noise at tiny sizes)
        return small[key] + max(0.0, large[key] - small[key]) * (PIXELS_4K - p0) / (p1 - p0)

    disk = per_pixel * MINUTE_4K_FRAMES * PIXELS_4K
    replaced = MINUTE_4K_FRAMES * PIXELS_4K * 3
    print(f"1 min 1080p -> 4K (extrapolated): peak temp disk {_mib(disk):.0f} MiB (the compressed output, "
          f"{per_pixel:.4f} B/pixel), no uncompressed intermediate (was {replaced / 1e9:.1f} GB); "
          f"peak RSS {line('rss'):.0f} MiB + encoder {line('encoder_rss'):.0f} MiB")
    return 0


if __name__ == "__main__":
    from sritm_tf.benchmarks import child_main

    sys.exit(child_main(lambda job: measure(**job)))
