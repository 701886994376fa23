"""`sritm convert-batch` on a generated 1-minute clip: wall time, segments, peak temporary disk, resume after a kill.

A synthetic SDR clip (testsrc2 with a sine tone, 24 fps, a keyframe every 2 s) is converted
(the classical conversion unless --network), each run a fresh `sritm` process:

1. `sritm convert-batch` on DirectRunner with --workers processes, uninterrupted: wall time,
   segments, and, polled every 10 ms, the peak temporary disk: the largest total size of the
   work folder (`OUT_DIR/.sritm-work`: segments being converted or waiting for an earlier one,
   the audio of the segment being joined) and of hidden temporaries in OUT_DIR, the joined
   prefix (`joined.mkv`, which becomes the output) left out; and the peak of both together,
   prefix included, against the output's size;
2. the same into a fresh folder, killed (SIGKILL to the driver and its workers) once
   --kill-after segments are finished, then run again: what the second run converted and reused,
   and whether its decoded frames are those of run 1 (the files differ: Matroska stamps the date);
3. the single-process `sritm convert` of the clip: its wall time, and the batch output
   compared with it: frame count, presentation timestamps (ffprobe), and PSNR of every
   decoded frame (10-bit Y'CbCr codes).

    sritm bench batch                          # 160x90 -> 320x180, 60 s, 10 s segments, 2 workers
    sritm bench batch --network --precision fp32

Prints one line per measurement.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction

import numpy as np

from sritm_tf.commands import options
from sritm_tf.sizes import parse_size


def add_arguments(parser):
    parser.add_argument("--size", default="160x90", metavar="WxH", help="LR clip size (default 160x90)")
    parser.add_argument("--seconds", type=int, default=60, help="clip length in seconds (default 60)")
    parser.add_argument("--segment-seconds", type=float, default=10.0, help="segment length (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="DirectRunner workers (default 2)")
    parser.add_argument("--kill-after", type=int, default=2, help="segments finished before the kill (default 2)")
    parser.add_argument("--network", action="store_true", help="the bundled network (default: the classical conversion)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--crf", type=int, default=18, help=options.CRF_HELP)
    parser.add_argument("--preset", default="medium", help=options.PRESET_HELP)


def work_bytes(work):
    """(temporary bytes besides the joined prefixes, bytes of the joined prefixes, finished segments)
    under `work` (an OUT_DIR or a title's work folder) now: the hidden `.part-` files and whatever
    is in a `.sritm-work` folder; a segment counts as finished once its `.json` is written or it
    is in its title's joined prefix (`joined.json`)."""
    from sritm_tf.batch.join import join_state

    total, prefix, finished = 0, 0, 0
    for folder, _, names in os.walk(work):
        joined = 0
        if "joined.json" in names:  # segments in the joined prefix, their files gone
            try:
                joined = join_state(folder)["joined"]
            except ValueError:  # being rewritten meanwhile
                pass
        finished += joined
        for name in names:
            temporary = name.startswith(".part-") or ".sritm-work" in folder
            finished += name.startswith("seg-") and name.endswith(".json") and int(name[4:8]) >= joined
            try:
                size = os.path.getsize(os.path.join(folder, name)) if temporary else 0
            except OSError:  # renamed or removed meanwhile
                continue
            if name == "joined.mkv":
                prefix += size
            else:
                total += size
    return total, prefix, finished


def _sritm(args, kill_after=None, work=None):
    """Runs `sritm ARGS` as a process of its own (group); polls `work` (OUT_DIR) for temporary bytes.
    Returns (exit status, stdout, wall seconds, peak temporary bytes, peak with the joined prefix)."""
    process = subprocess.Popen([sys.executable, "-m", "sritm_tf.cli", *map(str, args)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    start, peak, done = time.perf_counter(), [0, 0], threading.Event()

    def poll():
        while not done.is_set() and work:
            total, prefix, finished = work_bytes(work)
            peak[0], peak[1] = max(peak[0], total), max(peak[1], total + prefix)
            if kill_after is not None and finished >= kill_after:
                os.killpg(process.pid, signal.SIGKILL)
                return
            time.sleep(0.01)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    out, err = process.communicate()
    done.set()
    poller.join()
    if process.returncode not in (0, -signal.SIGKILL):
        print(err.strip(), file=sys.stderr)
    return process.returncode, out, time.perf_counter() - start, peak[0], peak[1]


def _frame_times(path):
    out = json.loads(subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-select_streams", "v:0",
                                     "-show_entries", "stream=time_base:packet=pts", str(path)],
                                    capture_output=True, text=True, check=True).stdout)
    tick = Fraction(out["streams"][0]["time_base"])
    return sorted(p["pts"] * tick for p in out["packets"])


def _min_psnr(a, b):
    """The lowest PSNR over the frames of two videos decoded side by side (10-bit codes)."""
    import av

    low = float("inf")
    with av.open(str(a)) as ca, av.open(str(b)) as cb:
        for fa, fb in zip(ca.decode(video=0), cb.decode(video=0)):
            x, y = (f.reformat(format="yuv420p10le").to_ndarray().astype(np.int64) for f in (fa, fb))
            mse = np.mean((x - y) ** 2)
            low = min(low, float("inf") if mse == 0 else 10 * np.log10(1023**2 / mse))
    return low


def run(args):
    width, height = parse_size(args.size, "--size")
    common = ["--crf", args.crf, "--preset", args.preset, "--scale", "2"]
    common += ["--precision", args.precision] if args.network else ["--baseline"]
    options = common + ["--segment-seconds", args.segment_seconds, "--workers", args.workers, "--format", "mkv"]
    frames, raw_frame = args.seconds * 24, width * 2 * height * 2 * 3  # yuv420p10le bytes of an output frame
    n_segments = max(1, round(args.seconds / max(args.segment_seconds, 2)))  # keyframes every 2 s
    with tempfile.TemporaryDirectory(prefix="sritm-bench-batch-") as work:
        clip = os.path.join(work, "clip.mp4")
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"testsrc2=size={width}x{height}:rate=24", "-f", "lavfi", "-i", "sine=frequency=440",
                        "-t", str(args.seconds), "-c:v", "libx264", "-g", "48", "-pix_fmt", "yuv420p",
                        "-c:a", "aac", "-shortest", clip], check=True)
        what = f"network {args.precision}" if args.network else "classical"
        print(f"clip: {width}x{height} -> {2 * width}x{2 * height}, {frames} frames at 24 fps ({args.seconds} s), "
              f"keyframe every 2 s, segments of ~{args.segment_seconds:g} s, {what}, x265 --preset {args.preset} "
              f"--crf {args.crf}, .mkv, DirectRunner with {args.workers} workers, {os.cpu_count()} CPUs")
        out = os.path.join(work, "batch")
        code, stdout, wall, peak, with_prefix = _sritm(["convert-batch", clip, "-o", out, *options], work=out)
        if code:
            return 1
        output = os.path.join(out, "clip.mkv")
        size = os.path.getsize(output)
        print(f"convert-batch: {wall:.1f} s wall; {stdout.strip()}")
        print(f"peak temporary disk: {peak / 2**10:.0f} KiB ({peak / raw_frame:.1f} uncompressed output frames; "
              f"{peak / size * n_segments:.1f} segments' share of the output); with the joined prefix "
              f"{with_prefix / 2**10:.0f} KiB, {with_prefix / size:.2f}x the output "
              f"({size / 2**10:.0f} KiB, {frames} frames)")

        resumed = os.path.join(work, "resumed")
        _sritm(["convert-batch", clip, "-o", resumed, *options], kill_after=args.kill_after, work=resumed)
        code, stdout, wall2, _, _ = _sritm(["convert-batch", clip, "-o", resumed, *options], work=resumed)
        if code:
            return 1
        same = _min_psnr(os.path.join(resumed, "clip.mkv"), output) == float("inf")
        print(f"killed after {args.kill_after} segments, then resumed: {wall2:.1f} s wall; {stdout.strip()}; "
              f"its frames {'identical to' if same else 'DIFFER from'} the uninterrupted run's")

        single = os.path.join(work, "single.mkv")
        code, _, wall1, _, _ = _sritm(["convert", clip, "-o", single, "--quiet", *common])
        if code:
            return 1
        times, want = _frame_times(output), _frame_times(single)
        print(f"single-process sritm convert: {wall1:.1f} s wall; batch vs single: {len(times)} vs {len(want)} "
              f"frames, timestamps {'identical' if times == want else 'DIFFER'}, lowest PSNR "
              f"{_min_psnr(output, single):.1f} dB")
    return 0
