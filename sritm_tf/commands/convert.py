"""`sritm convert`: SDR image or video -> HDR10 (BT.2020, PQ), `scale`x larger."""
import sys

from sritm_tf.commands import options


def register(subparsers):
    parser = subparsers.add_parser(
        "convert", parents=[options.conversion_parent()], help="convert an SDR image or video to HDR10 (or HLG)",
        description="Convert an 8-bit SDR image (PNG, JPEG, TIFF), video (anything ffmpeg reads) or raw "
                    "yuv420p file to HDR10 (BT.2020, PQ; or BT.2100 HLG with --transfer hlg), 2x or 4x larger. Outputs: .png (16-bit RGB, "
                    "full range), .yuv (yuv420p10le, limited range), .mp4/.mkv (HEVC Main10 HDR10, or AV1 10-bit), "
                    ".mov (ProRes 422 HQ or 4444), with the source's audio, subtitles, chapters, title and timecode.")
    parser.add_argument("input", help="SDR image, video, raw .yuv (with --input-size), or image sequence "
                        "(frame_%%06d.png, .tif or .dpx: ffmpeg's numbering; with --fps)")
    parser.add_argument("-o", "--output", required=True, help="output file (.png, .yuv, .mp4, .mkv, .mov), or 16-bit image "
                        "sequence out/frame_%%06d.png or .tif (resumed: frames on disk are kept)")
    parser.add_argument("--format", choices=("png", "yuv", "mp4", "mkv", "mov"),
                        help="output format (default: from extension)")
    parser.add_argument("--codec", choices=("hevc", "av1", "prores422hq", "prores4444"),
                        help="video codec of a .mkv/.mp4 output (hevc, default; av1: SVT-AV1 10-bit at --crf, at the "
                             "SVT-AV1 preset of like speed to --preset) or of a .mov output (prores422hq, default; "
                             "prores4444)")
    parser.add_argument("--size", metavar="WxH", help=options.OUTPUT_SIZE_HELP)
    parser.add_argument("--input-size", metavar="WxH", help=options.YUV_SIZE_HELP)
    parser.add_argument("--fps", type=float, help="frame rate of a raw .yuv, image or image sequence input (default 25)")
    parser.add_argument("--allow-truncated", action="store_true",
                        help="convert the frames of a truncated or damaged video that decode (default: refuse it)")
    parser.set_defaults(func=run, check=check)


def check(args):
    """The checks that need no TensorFlow, run before the CLI imports it: a mistyped argument fails at once."""
    from sritm_tf.convert import check_fps, check_input, check_output, open_source, output_format
    from sritm_tf.sizes import parse_size
    from sritm_tf.video.geometry import check_size
    from sritm_tf.video.mastering import output_codec

    options.check_conversion(args)  # option values first, then files
    if args.input_size is not None:
        parse_size(args.input_size, "--input-size")
    check_fps(args.fps)
    check_input(args.input)
    check_size(args.size, output_format(args.output, args.format))
    output_codec(args.output, output_format(args.output, args.format), args.codec)
    check_output(args.output, args.overwrite, args.input)
    frames = iter(open_source(args.input, args.input_size, args.fps, args.allow_truncated, args.field_order,
                              args.deinterlace))
    next(frames, None)  # the first frame decodes: a damaged, HDR or cut input is refused now
    frames.close()


def run(args):
    from sritm_tf.convert import convert
    from sritm_tf.inference import parse_tile

    tile = parse_tile(args.tile, "--tile") if args.tile else None  # None: the precision's default
    chosen, engine, why = options.network_setup(args)
    result = convert(args.input, args.output, format=args.format, scale=args.scale, weights=args.weights,
                     baseline=args.baseline, overwrite=args.overwrite, tile=tile, size=args.size,
                     input_size=args.input_size, fps=args.fps, white_nits=args.white_nits, peak_nits=args.peak_nits,
                     progress=not args.quiet, crf=args.crf, preset=args.preset, precision=chosen, engine=engine,
                     allow_truncated=args.allow_truncated, transfer=args.transfer, codec=args.codec,
                     field_order=args.field_order, deinterlace=args.deinterlace)
    if "truncated" in result:
        decoded, listed = result["truncated"]
        print(f"sritm convert: warning: {args.input}: truncated or damaged; converted the {decoded} of "
              f"{listed or 'unknown'} frames that decode", file=sys.stderr)
    if not args.quiet and result["frames"] == 0 and result.get("skipped"):  # a sequence already whole
        print(f"{args.output}: all {result['skipped']} frames exist; nothing to do (--overwrite rewrites them)")
    elif not args.quiet:
        extra = "".join(f", {k} {result[k]}" for k in ("max_cll", "max_fall") if k in result)
        used = "classical conversion" if args.baseline else f"network in {chosen} on {engine}: {why}"
        print(f"wrote {args.output} ({result['frames']} frame{'s' if result['frames'] != 1 else ''}{extra}; {used})")
    return 0
