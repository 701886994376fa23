"""`sritm prepare`: make training pairs (LR SDR, HR HDR10 patches) as TFRecord shards.

Exit status: 0 when the output folder holds at least one patch after the run (files that
could not be used are listed at the end on stderr); 2 (a user error) when nothing usable
was produced, or on bad arguments.
"""
from sritm_tf.commands import options
from sritm_tf.errors import UserError

HR_PATCH = 160  # HR patch side when --patch-size is not given: 80 LR pixels at x2, 40 at x4


def register(subparsers):
    parser = subparsers.add_parser(
        "prepare",
        help="make training pairs from HDR sources (EXR, HDR10 stills/video, raw YUV, SDR/HDR pairs)",
        description=(
            "Cut random HR HDR10 patches (BT.2020, PQ, 10-bit) and their LR SDR inputs (BT.709, gamma, "
            "8-bit; SDR from the master or a tone-mapping operator, bicubic downscale) into "
            "OUTPUT/shard-NNNNN.tfrecord, OUTPUT/manifest.jsonl and OUTPUT/prepare.json. Re-running resumes."
        ),
    )
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="files or folders")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    options.add_scale(parser)
    parser.add_argument("--kind", choices=("auto", "exr", "hdr10", "video", "yuv", "pairs"), default="auto")
    parser.add_argument("--operator", default="bt2446a", choices=("bt2446a", "hable"), help="HDR -> SDR operator")
    parser.add_argument("--augment", action="store_true", help="randomise the operator's parameters per frame")
    parser.add_argument("--patch-size", type=int, default=None,
                        help=f"{options.PATCH_SIZE_HELP} (default {HR_PATCH} // scale: {HR_PATCH} HR pixels); the HR "
                             "patches are scale times larger")
    parser.add_argument("--crops", type=int, default=30, help="random patches per frame (default 30)")
    parser.add_argument("--stride", type=int, default=30, help="take every N-th video frame (default 30)")
    parser.add_argument("--max-frames", type=int, default=None, help="at most this many frames per video")
    parser.add_argument("--input-size", default=None, metavar="WxH", help=options.YUV_SIZE_HELP)
    parser.add_argument("--seed", type=int, default=0, help=options.SEED_HELP)
    parser.add_argument("--white-nits", type=float, default=203.0, help="diffuse white of EXR sources (cd/m2)")
    parser.add_argument("--overwrite", action="store_true", help="replace an output prepared with other settings")
    parser.add_argument("--quiet", action="store_true", help=options.QUIET_HELP)
    parser.set_defaults(func=run, check=check)


def check(args):
    """The checks that need no TensorFlow, run before the CLI imports it."""
    from sritm_tf.sizes import parse_size

    if args.patch_size is not None and args.patch_size < 1:
        raise UserError(f"--patch-size: expected a positive LR patch side in pixels, got {args.patch_size}")
    if args.input_size:
        parse_size(args.input_size, "--input-size")


def run(args):
    import sys

    from sritm_tf.data import prepare
    from sritm_tf.sizes import parse_size

    config = prepare.PrepareConfig(
        scale=args.scale, kind=args.kind, operator=args.operator, augment=args.augment,
        patch=args.patch_size * args.scale if args.patch_size else HR_PATCH, crops=args.crops, stride=args.stride,
        size=list(parse_size(args.input_size, "--input-size")) if args.input_size else None, seed=args.seed,
        white_nits=args.white_nits, max_frames=args.max_frames,
    )
    summary = prepare.prepare(args.sources, args.output, config, overwrite=args.overwrite, progress=not args.quiet)
    print(
        f"{args.output}: {summary['patches']} patches; {summary['written']} sources written, "
        f"{summary['skipped']} already done, {len(summary['failed'])} failed"
    )
    if summary["failed"]:
        print("not used:", file=sys.stderr)
        for _, message in summary["failed"]:
            print(f"  {message}", file=sys.stderr)
    if summary["patches"] == 0:
        raise UserError(f"{args.output}: no usable source ({len(summary['failed'])} failed)")
    return 0
