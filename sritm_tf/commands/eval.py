"""`sritm eval PAIRS_DIR`: PSNR, SSIM, MS-SSIM, mPSNR and dE_ITP of the network
against the BT.2408 and oracle global-curve baselines on graded SDR/HDR10 pairs
(see `sritm_tf.evaluate`). `--protocol paper` scores as the authors' `test_yuv.m`
does: PSNR, MATLAB SSIM and `mPSNR_HDR.m` on 4:2:0 narrow-range Y'CbCr codes.
`sritm eval --video SDR_CLIP`: temporal stability, no reference needed: the flow-warped
frame-to-frame error of the network's and the classical conversion's output (`sritm_tf.temporal`)."""
import contextlib
import json
import math
import os
import sys

from sritm_tf.commands import options


def register(subparsers):
    p = subparsers.add_parser("eval", help="quality of the network and classical baselines on SDR/HDR10 pairs, "
                                           "or their temporal stability on an SDR clip (--video)",
                              description=__doc__)
    p.add_argument("pairs_dir", metavar="PAIRS_DIR", nargs="?",
                   help="folder of <name>_sdr.* / <name>_hdr.* pairs and/or Ultra HDR gain-map JPEGs")
    p.add_argument("--video", metavar="SDR_CLIP",
                   help="instead of PAIRS_DIR: temporal stability on this SDR clip, no reference needed: the "
                        "flow-warped frame-to-frame error (10-bit PQ codes) of the network's and the classical "
                        "conversion's output, at full resolution and low-passed, and their ratio")
    p.add_argument("--frames", type=int, metavar="N", help="with --video: the first N frames only (default all)")
    options.add_scale(p)
    options.add_weights(p)
    p.add_argument("--baseline-only", action="store_true", help="only the BT.2408 and oracle baselines (no network)")
    p.add_argument("--crop", metavar="WxH",
                   help="centre crop of each HR frame, at most the frame (keeps CPU runs short; default: whole "
                        "frame; the JSON rows give the size scored)")
    p.add_argument("--tile", metavar="N|WxH", help="LR tile size of the tiled inference")
    p.add_argument("--white-nits", metavar="N|auto",
                   help="SDR white (cd/m2) of the model's classical skip and of the bt2408 baseline it is compared "
                        "with (default: the --grade file's, else 203); auto: per frame, the white that fits its HDR "
                        "best at gamma 2.4")
    options.add_grade(p)
    p.add_argument("--precision", choices=["auto", "bf16", "fp32", "int8"], default="auto",
                   help="network compute precision (default auto: bf16 where the CPU has bfloat16 units or the GPU "
                        "is of compute capability 8.0+); int8 runs on --engine litert or openvino, calibrated as "
                        "sritm convert calibrates it")
    p.add_argument("--engine", choices=["auto", "tf", "openvino", "litert"], default="auto",
                   help="what runs the network, as in sritm convert (default auto: TensorFlow; LiteRT for int8; "
                        "OpenVINO for bf16 on CPUs with AMX when it is installed)")
    p.add_argument("--protocol", choices=["ours", "paper"], default="ours",
                   help="ours (default): PQ R'G'B' / full-range Y'CbCr after 10-bit rounding, dE_ITP; paper: the "
                        "authors' test_yuv.m (narrow-range 4:2:0 Y'CbCr codes / 1023 of the unrounded prediction, "
                        "MATLAB ssim, mPSNR_HDR.m), to compare with the paper's tables")
    p.add_argument("--json", metavar="PATH", help="also write the rows and means to this JSON file")
    p.add_argument("--report", metavar="DIR",
                   help="also write an HTML page to this new folder: per pair the SDR, the graded HDR, the network "
                        "and the classical conversion tone-mapped side by side, a before/after slider, dE_ITP heat "
                        "maps, the metrics per hue sector and the HDR10 PNGs (sritm_tf.report)")
    p.add_argument("--overwrite", action="store_true", help=options.OVERWRITE_HELP)
    p.set_defaults(func=run, check=check)


def white_level(value):
    """--white-nits: cd/m2 in (0, 10000], or "auto"."""
    from sritm_tf.errors import UserError

    if value == "auto":
        return value
    try:
        white = float(value)
    except ValueError:
        white = -1.0
    if not 0 < white <= 10000:
        raise UserError(f"--white-nits: expected cd/m2 in (0, 10000] or 'auto', got {value!r}")
    return white


def check(args):
    """The checks that need no TensorFlow, run before the CLI imports it: options, the pairs folder,
    the --json target (a missing folder fails now, not after the metrics) and the weights file."""
    from sritm_tf.data.sources import find_pairs  # not sritm_tf.evaluate, which imports Keras
    from sritm_tf.errors import UserError
    from sritm_tf.inference import parse_tile
    from sritm_tf.sizes import parse_shape

    from sritm_tf.grade import apply_grade

    apply_grade(args, default_white="203")  # --white-nits from --grade, or 203
    if args.crop:
        parse_shape(args.crop, "--crop")
    white_level(args.white_nits)
    if args.tile:
        parse_tile(args.tile, "--tile")
    if args.video is not None or args.pairs_dir is None:
        check_video(args)
    elif args.frames is not None:
        raise UserError("--frames is for --video SDR_CLIP")
    elif not os.path.isdir(args.pairs_dir):
        raise UserError(f"{args.pairs_dir}: not a folder")
    elif not find_pairs(args.pairs_dir):
        raise UserError(f"{args.pairs_dir}: no <name>_sdr.* / <name>_hdr.* pairs or gain-map JPEGs")
    if args.json:
        from sritm_tf.convert import check_output
        from sritm_tf.errors import FileError

        try:
            check_output(args.json, args.overwrite)
        except FileError as err:  # named by its option: the table is the main output
            raise UserError(f"--json {err}") from None
    if args.report:
        from sritm_tf.report import check_folder

        if args.protocol == "paper":
            raise UserError("--report shows PQ R'G'B' frames: not with --protocol paper")
        check_folder(args.report, args.overwrite)
    options.network_setup(args)  # an engine that is not installed, or does not run the precision
    if args.weights and not args.baseline_only:
        from sritm_tf.pretrained import check_weights_file

        check_weights_file(args.weights)


def check_video(args):
    """--video SDR_CLIP: a video file, at least one pair of frames, and no option that needs references."""
    from sritm_tf.errors import UserError
    from sritm_tf.temporal import open_clip

    if args.video is None:
        raise UserError("a PAIRS_DIR of graded pairs, or --video SDR_CLIP, is needed")
    if args.pairs_dir is not None:
        raise UserError(f"{args.pairs_dir}: give PAIRS_DIR or --video SDR_CLIP, not both")
    for option, given in (("--crop", args.crop), ("--white-nits auto", args.white_nits == "auto"),
                          ("--protocol paper", args.protocol == "paper"), ("--report", args.report)):
        if given:
            raise UserError(f"{option} needs graded references: not with --video")
    if args.frames is not None and args.frames < 2:
        raise UserError(f"--frames: expected at least 2 (one pair of frames), got {args.frames}")
    open_clip(args.video)


def run_video(args):
    """The temporal table of the network (unless --baseline-only) and the classical conversion."""
    from sritm_tf import temporal
    from sritm_tf.convert import FrameConverter

    white = white_level(args.white_nits)
    converters = {}
    if not args.baseline_only:
        chosen, engine, why = options.network_setup(args)
        converters["network"] = FrameConverter(args.scale, args.weights, tile=args.tile, white_nits=white,
                                               precision=chosen, engine=engine)
        print(f"network in {chosen} on {engine} ({why})", file=sys.stderr)
    converters["baseline"] = FrameConverter(args.scale, baseline=True, white_nits=white)
    result = temporal.measure_clip(args.video, converters, args.scale, args.frames)
    print(temporal.format_table(result))
    return result


def run(args):
    if args.video is not None:
        result = run_video(args)
        return write_json(args, {"video": args.video, "scale": args.scale, "weights": args.weights, **result})
    from sritm_tf import evaluate
    from sritm_tf.inference import parse_tile
    from sritm_tf.sizes import parse_shape

    crop = parse_shape(args.crop, "--crop") if args.crop else None  # (h, w)
    white = white_level(args.white_nits)
    tile = parse_tile(args.tile, "--tile") if args.tile else None

    predict = None
    if not args.baseline_only:
        from sritm_tf.engines import model_precision
        from sritm_tf.pretrained import load_model

        chosen, engine, why = options.network_setup(args)
        model = load_model(args.scale, args.weights, precision=model_precision(engine, chosen))
        print(f"network in {chosen} on {engine} ({why})", file=sys.stderr)
        predictor = evaluate.model_yuv_predictor if args.protocol == "paper" else evaluate.model_predictor
        predict = predictor(model, tile, engine, chosen)

    from sritm_tf.report import eval_frames

    title = f"sritm eval {args.pairs_dir}, x{args.scale}"
    with eval_frames(args.report, title) if args.report else contextlib.nullcontext() as frames:
        rows = evaluate.evaluate(args.pairs_dir, args.scale, predict, crop,
                                 progress=lambda name: print(f"{name} done", file=sys.stderr, flush=True),
                                 white_nits=white, protocol=args.protocol, frames=frames)
    print(evaluate.format_table(rows))

    return write_json(args, {"scale": args.scale, "protocol": args.protocol, "crop": crop, "weights": args.weights,
                             "white_nits": white, "rows": rows, "mean": evaluate.mean_rows(rows)})


def json_values(value):
    """`value` with each float that is not finite (a metric undefined on the frames: NaN) as None,
    JSON's null: JSON has no NaN or Infinity (RFC 8259 section 6)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_values(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_values(item) for item in value]
    return value


def write_json(args, result):
    """Writes `result` to --json, if given, undefined metrics as null (`json_values`); 0."""
    from sritm_tf.fileio import atomic_path

    if args.json:
        with atomic_path(args.json) as tmp, open(tmp, "w") as f:
            json.dump(json_values(result), f, indent=1, allow_nan=False)
    return 0
