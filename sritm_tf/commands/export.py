"""`sritm export`: the network as a TF Serving SavedModel or a TFLite (LiteRT) file."""
import os

from sritm_tf.commands import options


def register(subparsers):
    p = subparsers.add_parser(
        "export", help="export a SavedModel for TF Serving or a TFLite file",
        description="SavedModel: written to OUT/<model-name>/<version> (TF Serving's layout), "
                    "signatures serving_default (float32 Y'CbCr) and rgb8_to_pq16 (uint8 RGB -> "
                    "uint16 PQ BT.2020 RGB), any input size. TFLite: one file with a fixed "
                    "[1, H, W, 3] float32 Y'CbCr input (--input-size, LR pixels).")
    p.add_argument("--format", choices=("savedmodel", "tflite"), required=True)
    p.add_argument("--quantize", choices=("none", "fp16", "dynamic", "int8"), default="none",
                   help="TFLite only: float16 weights, int8 weights (dynamic range), or full "
                        "int8 calibrated on the bundled sample image or --calibration, plus a colour chart (default: none)")
    p.add_argument("--calibration", action="append", metavar="FILE",
                   help="--quantize int8 only: an 8-bit SDR image or a scene-linear .exr still to "
                        "calibrate on (repeat for several; default: the bundled sample image)")
    options.add_scale(p)
    options.add_weights(p)
    p.add_argument("--input-size", metavar="WxH",
                   help="TFLite only: LR input size (default 960x540, a 1080p output at x2)")
    p.add_argument("--model-name", default="sritm", help=options.MODEL_NAME_HELP)
    p.add_argument("--version", type=int, default=1, help="SavedModel only (default: 1)")
    p.add_argument("-o", "--output", required=True,
                   help="SavedModel: TF Serving base folder; TFLite: the .tflite file")
    p.add_argument("--overwrite", action="store_true", help=options.OVERWRITE_HELP)
    p.set_defaults(func=run, check=check)


def check(args):
    """The checks that need no TensorFlow, run before the CLI imports it: a mistyped argument fails at once.

    Output folders follow convert's rule: the folder that holds a file output (the
    .tflite) must exist; a folder output (the SavedModel's base folder, laid out as
    <model-name>/<version>) is created."""
    from sritm_tf.errors import UserError
    from sritm_tf.fileio import check_folder_output
    from sritm_tf.sizes import parse_shape

    if args.format == "savedmodel":
        if args.quantize != "none":
            raise UserError("--quantize: applies to --format tflite only")
        if args.input_size:
            raise UserError("--input-size: applies to --format tflite only (the SavedModel takes any size)")
        if args.version < 1:
            raise UserError(f"--version: must be a positive integer, got {args.version}")
        name = args.model_name
        if not name or name in (".", "..") or any(sep and sep in name for sep in ("/", os.sep, os.altsep)):
            raise UserError(f"--model-name: expected the name of one folder (TF Serving's model name), got {name!r}")
        check_folder_output(args.output, "-o with --format savedmodel (TF Serving's base folder)")
        version = os.path.join(args.output, name, str(args.version))  # export.serving_path's layout
        if os.path.exists(version) and not args.overwrite:
            raise UserError(f"{version}: exists (pass --overwrite to replace it, or another --version)")
    else:
        from sritm_tf.convert import check_output

        if args.input_size:
            parse_shape(args.input_size, "--input-size")
        check_output(args.output, args.overwrite)
    if args.weights:
        from sritm_tf.pretrained import check_weights_file

        check_weights_file(args.weights)
    if args.calibration and args.quantize != "int8":
        raise UserError("--calibration: applies to --quantize int8 only")


def run(args):
    from sritm_tf.sizes import parse_shape

    input_size = parse_shape(args.input_size, "--input-size") if args.input_size else None  # (h, w)

    from sritm_tf import export
    from sritm_tf.pretrained import load_model

    target = export.serving_path(args.output, args.model_name, args.version) \
        if args.format == "savedmodel" else args.output  # not there unless --overwrite (check)
    model = load_model(args.scale, args.weights)

    if args.format == "savedmodel":
        path = export.export_savedmodel(model, target, overwrite=args.overwrite)
        print(f"wrote {path} (signatures: {', '.join(export.SIGNATURES)})")
    else:
        input_size = input_size or export.DEFAULT_INPUT_SIZE
        frames = export.calibration_frames(input_size, images=export.calibration_images(args.calibration)) \
            if args.calibration else None
        path = export.export_tflite(model, target, args.quantize, input_size, frames, overwrite=args.overwrite)
        h, w = input_size
        print(f"wrote {path} ({args.quantize}, input [1, {h}, {w}, 3] -> "
              f"[1, {h * args.scale}, {w * args.scale}, 3], {path.stat().st_size:,} bytes)")
    return 0
