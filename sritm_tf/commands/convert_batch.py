"""`sritm convert-batch`: a catalogue of SDR images and videos -> HDR10, in parallel on Apache Beam."""
import os
import sys
import time
import traceback

from sritm_tf.commands import options
from sritm_tf.errors import SritmError, ToolError, UserError

BEAM_MISSING = 'Apache Beam is not installed: pip install "sritm_tf[beam]"'


def register(subparsers):
    parser = subparsers.add_parser(
        "convert-batch", parents=[options.conversion_parent()],
        help="convert many images and videos in parallel (Apache Beam; resumable)",
        description="Convert SDR images (to 16-bit HDR10 .png) and videos (to HEVC HDR10 .mkv/.mp4, or .yuv) into "
                    "OUT_DIR, in parallel on Apache Beam: videos are split at keyframes into segments converted "
                    "on their own and joined without re-encoding. A re-run converts only what a killed run did not "
                    "finish. Beam's own options go after a bare --, as --name=value (e.g. -- --project=my-project).")
    parser.add_argument("inputs", nargs="+", help="images, videos, folders (searched recursively) and globs")
    parser.add_argument("-o", "--output", required=True, metavar="OUT_DIR",
                        help="output folder: OUT_DIR/<name>.png for an image, OUT_DIR/<name>.<format> for a video "
                             "(<name>: the file's name without extension, with its sub-folder for files found in a folder)")
    parser.add_argument("--runner", default="DirectRunner",
                        help="Beam runner: DirectRunner (default: this machine), DataflowRunner, FlinkRunner, SparkRunner, ...")
    parser.add_argument("--workers", type=int, default=os.cpu_count(),
                        help=f"DirectRunner worker processes (default: the CPU count, {os.cpu_count()})")
    parser.add_argument("--segment-seconds", type=float, default=10.0,
                        help="video segment length in seconds, cut at the keyframe after it (default 10)")
    parser.add_argument("--format", choices=("mkv", "mp4", "yuv"), default="mkv",
                        help="video output format (default mkv); images are written as .png")
    parser.add_argument("--size", metavar="WxH", help=options.OUTPUT_SIZE_HELP)
    parser.set_defaults(func=run, check=check, beam_args=True, tensorflow=False)


def check(args):
    """Beam, option values, the weights file and the inputs, before any work."""
    from sritm_tf.fileio import captured_stderr, check_folder_output

    try:
        with captured_stderr():  # its warnings about optional Google Cloud clients
            import apache_beam  # noqa: F401
    except ImportError:
        raise UserError(BEAM_MISSING) from None
    options.check_conversion(args)
    from sritm_tf.video.geometry import check_size

    check_size(args.size, args.format)
    if not args.segment_seconds > 0:
        raise UserError(f"--segment-seconds: expected seconds > 0, got {args.segment_seconds:g}")
    if args.workers < 1:
        raise UserError(f"--workers: expected 1 or more, got {args.workers}")
    check_folder_output(args.output, "the output (-o)")
    from sritm_tf.batch.plan import find_inputs

    if not find_inputs(args.inputs, args.output):  # InputError for a name matching nothing; before OUT_DIR is made
        raise UserError(f"{', '.join(map(str, args.inputs))}: no images or videos to convert")


def tell_failure(path, message, file=None):
    """The one line of an input that failed."""
    print(f"sritm convert-batch: failed: {message if message.startswith(path) else f'{path}: {message}'}",
          file=file or sys.stderr, flush=True)


def run(args):
    from sritm_tf.batch.plan import output_lock

    with output_lock(args.output):  # before the log and the plan: one run per OUT_DIR
        return run_locked(args)


def run_locked(args):
    from sritm_tf.fileio import captured_stderr
    from sritm_tf.inference import parse_tile

    chosen, engine, _ = options.network_setup(args)
    log = os.path.join(args.output, ".sritm-batch.log")
    start = time.perf_counter()
    terminal = os.fdopen(os.dup(2), "w")  # stderr while Beam's logs go to the log
    try:
        with terminal, captured_stderr(log):  # Beam's and its workers' logs
            from sritm_tf.batch import pipeline as batch

            report = batch.convert_batch(
                args.inputs, args.output, runner=args.runner, workers=args.workers, beam_args=args.beam_args,
                on_failure=lambda path, message: tell_failure(path, message, terminal),
                segment_seconds=args.segment_seconds, format=args.format, overwrite=args.overwrite, crf=args.crf,
                preset=args.preset, scale=args.scale, weights=args.weights, baseline=args.baseline,
                tile=parse_tile(args.tile, "--tile") if args.tile else None, white_nits=args.white_nits,
                peak_nits=args.peak_nits, precision=chosen, engine=engine, transfer=args.transfer, size=args.size,
                field_order=args.field_order, deinterlace=args.deinterlace)
    except SritmError:
        raise
    except Exception as err:  # a worker's bug or a lost worker: the runner's message is long, the log has it
        with open(log, "a") as f:
            traceback.print_exc(file=f)
        last = next((line for line in reversed(str(err).splitlines()) if line.strip()), type(err).__name__)
        raise ToolError(f"the Beam pipeline failed ({last.strip()[:300]}); log: {log}; a re-run resumes") from None
    os.remove(log)
    for path, message in report["failed"]:
        if path not in report["told"]:  # told as it failed
            tell_failure(path, message)
    if not args.quiet:
        print(f"{len(report['done'])} converted, {len(report['skipped'])} skipped (output exists), "
              f"{len(report['failed'])} failed; video segments: {report['segments']} converted, "
              f"{report['reused']} reused; {time.perf_counter() - start:.1f} s on {args.runner}"
              + (f" with {args.workers} workers" if args.runner == "DirectRunner" else ""))
    if report["failed"]:
        print(f"sritm convert-batch: error: {len(report['failed'])} of "
              f"{len(report['failed']) + len(report['done']) + len(report['skipped'])} inputs failed: "
              + ", ".join(path for path, _ in report["failed"]), file=sys.stderr)
        return 1
    return 0
