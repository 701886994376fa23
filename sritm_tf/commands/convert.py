"""`sritm convert`: SDR image or video -> HDR10 (BT.2020, PQ), `scale`x larger."""
import sys

from sritm_tf.commands import options


def register(subparsers):
    parser = subparsers.add_parser(
        "convert", parents=[options.conversion_parent()], help="convert an SDR image or video to HDR10 (or HLG)",
        description="Convert an 8-bit SDR image (PNG, JPEG, TIFF), video (anything ffmpeg reads) or raw "
                    "yuv420p file to HDR10 (BT.2020, PQ; or BT.2100 HLG with --transfer hlg), 2x or 4x larger. Outputs: .png (16-bit RGB, "
                    "full range), .yuv (yuv420p10le, limited range), .mp4/.mkv (HEVC Main10 HDR10).")
    parser.add_argument("input", help="SDR image, video, or raw .yuv (with --size)")
    parser.add_argument("-o", "--output", required=True, help="output file (.png, .yuv, .mp4, .mkv)")
    parser.add_argument("--format", choices=("png", "yuv", "mp4", "mkv"), help="output format (default: from extension)")
    parser.add_argument("--size", metavar="WxH", help=options.YUV_SIZE_HELP)
    parser.add_argument("--fps", type=float, help="frame rate of a raw .yuv or image input (default 25)")
    parser.add_argument("--allow-truncated", action="store_true",
                        help="convert the frames of a truncated or damaged video that decode (default: refuse it)")
    parser.set_defaults(func=run, check=check)


def check(args):
    """The checks that need no TensorFlow, run before the CLI imports it: a mistyped argument fails at once."""
    from sritm_tf.convert import check_fps, check_input, check_output, open_source, output_format
    from sritm_tf.sizes import parse_size

    options.check_conversion(args)  # option values first, then files
    if args.size is not None:
        parse_size(args.size, "--size")
    check_fps(args.fps)
    check_input(args.input)
    output_format(args.output, args.format)
    check_output(args.output, args.overwrite, args.input)
    frames = iter(open_source(args.input, args.size, args.fps, args.allow_truncated))
    next(frames, None)  # the first frame decodes: a damaged, HDR or cut input is refused now
    frames.close()


def run(args):
    from sritm_tf.convert import convert
    from sritm_tf.inference import parse_tile

    tile = parse_tile(args.tile, "--tile") if args.tile else None  # None: the precision's default
    chosen, engine, why = options.network_setup(args)
    result = convert(args.input, args.output, format=args.format, scale=args.scale, weights=args.weights,
                     baseline=args.baseline, overwrite=args.overwrite, tile=tile, size=args.size,
                     fps=args.fps, white_nits=args.white_nits, peak_nits=args.peak_nits, progress=not args.quiet,
                     crf=args.crf, preset=args.preset, precision=chosen, engine=engine,
                     allow_truncated=args.allow_truncated, transfer=args.transfer)
    if "truncated" in result:
        decoded, listed = result["truncated"]
        print(f"sritm convert: warning: {args.input}: truncated or damaged; converted the {decoded} of "
              f"{listed or 'unknown'} frames that decode", file=sys.stderr)
    if not args.quiet:
        extra = "".join(f", {k} {result[k]}" for k in ("max_cll", "max_fall") if k in result)
        used = "classical conversion" if args.baseline else f"network in {chosen} on {engine}: {why}"
        print(f"wrote {args.output} ({result['frames']} frame{'s' if result['frames'] != 1 else ''}{extra}; {used})")
    return 0
