"""`sritm convert`: SDR image or video -> HDR10 (BT.2020, PQ), `scale`x larger."""
import sys

from sritm_tf.errors import UserError


def register(subparsers):
    parser = subparsers.add_parser(
        "convert", help="convert an SDR image or video to HDR10 (or HLG)",
        description="Convert an 8-bit SDR image (PNG, JPEG, TIFF), video (anything ffmpeg reads) or raw "
                    "yuv420p file to HDR10 (BT.2020, PQ; or BT.2100 HLG with --transfer hlg), 2x or 4x larger. Outputs: .png (16-bit RGB, "
                    "full range), .yuv (yuv420p10le, limited range), .mp4/.mkv (HEVC Main10 HDR10).")
    parser.add_argument("input", help="SDR image, video, or raw .yuv (with --size)")
    parser.add_argument("-o", "--output", required=True, help="output file (.png, .yuv, .mp4, .mkv)")
    parser.add_argument("--scale", type=int, choices=(2, 4), default=2, help="upscaling factor (default 2)")
    parser.add_argument("--weights", help="weights (.npz, .keras, .weights.h5); default: the bundled ones")
    parser.add_argument("--baseline", action="store_true",
                        help="classical conversion instead of the network: bicubic, then SDR at --white-nits")
    parser.add_argument("--white-nits", type=float, default=203.0,
                        help="SDR reference white in cd/m2 (default 203, BT.2408): where --baseline and the network's "
                             "classical skip put SDR 100%%, and flat SDR graphics land; the network expands a picture's "
                             "highlights above it, as real SDR grades imply; graded HDR often sits at 300-500")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32", "int8"], default="auto",
                        help="network compute precision (default auto: bf16 on CPUs with AVX512-BF16 or AMX, "
                             "and on GPUs of compute capability 8.0+; the choice is printed); int8 runs on --engine litert")
    parser.add_argument("--engine", choices=["auto", "tf", "openvino", "litert"], default="auto",
                        help="what runs the network (default auto: OpenVINO for bf16 when it is installed and the CPU has AMX, "
                             "pip install \"sritm_tf[openvino]\", else TensorFlow); litert runs the TFLite model")
    parser.add_argument("--peak-nits", type=float, default=1000.0,
                        help="no output pixel brighter than this, cd/m2 (default 1000, the mastering peak; 10000: no limit; "
                             "at most 1000 with --transfer hlg)")
    parser.add_argument("--transfer", choices=("pq", "hlg"), default="pq",
                        help="output transfer: pq (HDR10, default) or hlg (BT.2100 HLG for a 1000 cd/m2 display, "
                             "for broadcast; no HDR10 metadata)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    parser.add_argument("--format", choices=("png", "yuv", "mp4", "mkv"), help="output format (default: from extension)")
    parser.add_argument("--size", metavar="WxH", help="frame size WxH of a raw .yuv input")
    parser.add_argument("--fps", type=float, help="frame rate of a raw .yuv or image input (default 25)")
    parser.add_argument("--tile", metavar="N|WxH",
                        help="LR tile size N or WxH for inference (default 640x360 in fp32, 960x540 in bf16: "
                             "a 1080p frame under 3 GiB either way); smaller uses less memory")
    parser.add_argument("--crf", type=int, default=18, help="x265 constant rate factor for .mp4/.mkv (default 18)")
    parser.add_argument("--preset", default="medium", help="x265 preset for .mp4/.mkv (default medium)")
    parser.add_argument("--allow-truncated", action="store_true",
                        help="convert the frames of a truncated or damaged video that decode (default: refuse it)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run, check=check)


def check(args):
    """The checks that need no TensorFlow, run before the CLI imports it: a mistyped argument fails at once."""
    from sritm_tf.convert import check_fps, check_input, check_output, open_source, output_format
    from sritm_tf.pretrained import check_weights_file
    from sritm_tf.sizes import parse_size

    check_options(args)  # option values first, then files
    if args.size is not None:
        parse_size(args.size, "--size")
    check_fps(args.fps)
    try:
        check_input(args.input)
        output_format(args.output, args.format)
        check_output(args.output, args.overwrite, args.input)
        if args.weights and not args.baseline:
            check_weights_file(args.weights)
        frames = iter(open_source(args.input, args.size, args.fps, args.allow_truncated))
        next(frames, None)  # the first frame decodes: a damaged, HDR or cut input is refused now
        frames.close()
    except (FileNotFoundError, FileExistsError, PermissionError, NotADirectoryError, IsADirectoryError) as err:
        raise UserError(str(err)) from None


def check_options(args):
    """The option values `convert` and `convert-batch` share: tile, white and peak levels,
    encoder settings, precision and engine."""
    from sritm_tf.inference import parse_tile
    from sritm_tf.video import check_encoder

    if args.tile:
        parse_tile(args.tile, "--tile")
    for option, nits in (("--white-nits", args.white_nits), ("--peak-nits", args.peak_nits)):
        if not 0 < nits <= 10000:
            raise UserError(f"{option}: expected cd/m2 in (0, 10000], got {nits:g}")
    if args.peak_nits < args.white_nits:
        raise UserError(f"--peak-nits {args.peak_nits:g} is below --white-nits {args.white_nits:g}: "
                        "the output would clip at less than SDR white")
    if args.transfer == "hlg" and args.peak_nits > 1000:
        raise UserError(f"--peak-nits {args.peak_nits:g} with --transfer hlg: HLG output is for a 1000 cd/m2 "
                        "display (BT.2100), so its peak is at most 1000")
    check_encoder(args.crf, args.preset)
    if not args.baseline:
        network_setup(args)


def network_setup(args):
    """(precision, engine, why the precision) from --precision and --engine; InputError
    for an engine that is not installed or does not run that precision."""
    from sritm_tf import engines
    from sritm_tf.precision import resolve

    chosen, why = ("int8", "as asked") if args.precision == "int8" else resolve(args.precision)
    return chosen, engines.resolve(args.engine, chosen)[0], why


def run(args):
    from sritm_tf.convert import convert
    from sritm_tf.inference import parse_tile

    tile = parse_tile(args.tile, "--tile") if args.tile else None  # None: the precision's default
    chosen, engine, why = ("fp32", "tf", "") if args.baseline else network_setup(args)
    try:
        result = convert(args.input, args.output, format=args.format, scale=args.scale, weights=args.weights,
                         baseline=args.baseline, overwrite=args.overwrite, tile=tile, size=args.size,
                         fps=args.fps, white_nits=args.white_nits, peak_nits=args.peak_nits, progress=not args.quiet,
                         crf=args.crf, preset=args.preset, precision=chosen, engine=engine,
                         allow_truncated=args.allow_truncated, transfer=args.transfer)
    except (FileNotFoundError, FileExistsError, PermissionError, NotADirectoryError,
            IsADirectoryError) as err:  # InputError / ToolError: reported by the CLI
        raise UserError(str(err)) from None
    if "truncated" in result:
        decoded, listed = result["truncated"]
        print(f"sritm convert: warning: {args.input}: truncated or damaged; converted the {decoded} of "
              f"{listed or 'unknown'} frames that decode", file=sys.stderr)
    if not args.quiet:
        extra = "".join(f", {k} {result[k]}" for k in ("max_cll", "max_fall") if k in result)
        used = "classical conversion" if args.baseline else f"network in {chosen} on {engine}: {why}"
        print(f"wrote {args.output} ({result['frames']} frame{'s' if result['frames'] != 1 else ''}{extra}; {used})")
    return 0
