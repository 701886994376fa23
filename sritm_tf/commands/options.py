"""Options that several commands share, declared once with one help text each.

`conversion`: the argparse parent of `sritm convert` and `sritm convert-batch` (the
network, its levels and the encoder), and `check_conversion`, their one check of
those values, run before TensorFlow starts. The help texts of options that other
commands and benchmarks declare too (`--scale`, `--weights`, `--overwrite`, ...) are
here as well, so that every `--help` says the same thing of the same option.
"""
import argparse

from sritm_tf.errors import UserError

SCALE_HELP = "upscaling factor (default 2)"
WEIGHTS_HELP = "weights (.npz, .keras, .weights.h5); default: the bundled ones of --model"
MODEL_HELP = ("which shipped network: full (default; Deep SR-ITM at the paper's size) or tv (the same "
              "structure within 300 GFLOP per 4K frame, for TV-class NPUs); --weights overrides it")
OVERWRITE_HELP = "replace an output that exists"
GRADE_HELP = ("a show's grade fitted by sritm calibrate: its SDR white sets --white-nits (an explicit "
              "--white-nits wins)")
QUIET_HELP = "no progress bar"
BATCH_SIZE_HELP = "patches per training step"
PATCH_SIZE_HELP = "side of the LR (network input) patches in pixels"
CRF_HELP = "x265 constant rate factor for .mp4/.mkv (default 18)"
PRESET_HELP = "x265 preset for .mp4/.mkv (default medium)"
YUV_SIZE_HELP = "frame size WxH of a raw .yuv input"
OUTPUT_SIZE_HELP = ("output frame size WxH, as ffmpeg's -s (resized after the network; even for video outputs); "
                    "default: --scale x the source, upright, an anamorphic source resized to square pixels")
SEED_HELP = "random seed (default 0)"
MODEL_NAME_HELP = "TF Serving's model name (default: sritm)"
CHANNELS_HELP, M_HELP, N_HELP = "feature channels (default 64)", "base/detail block pairs (default 3)", \
    "fusion ResBlocks (default 10)"


def add_grade(parser):
    parser.add_argument("--grade", metavar="GRADE_JSON", help=GRADE_HELP)


def add_scale(parser):
    parser.add_argument("--scale", type=int, choices=(2, 4), default=2, help=SCALE_HELP)


def add_weights(parser):
    """--weights, and --model that names the shipped network used without it."""
    from sritm_tf.presets import MODELS

    parser.add_argument("--weights", help=WEIGHTS_HELP)
    parser.add_argument("--model", choices=list(MODELS), default="full", help=MODEL_HELP)


def resolve_model(args):
    """Without --weights, `--model tv` stands for the shipped TV network's weights file of
    --scale, so that everything after (the checks, the engines' caches) sees a path."""
    from sritm_tf import presets
    from sritm_tf.pretrained import preset_weights_path

    if getattr(args, "model", "full") != "full" and not args.weights:
        args.weights = preset_weights_path(presets.preset_for_scale(args.scale, args.model).name)


def conversion_parent():
    """The options `sritm convert` and `sritm convert-batch` share (argparse `parents=`)."""
    parser = argparse.ArgumentParser(add_help=False)
    add_scale(parser)
    add_weights(parser)
    parser.add_argument("--baseline", action="store_true",
                        help="classical conversion instead of the network: bicubic, then SDR at --white-nits")
    parser.add_argument("--white-nits", type=float,
                        help="SDR reference white in cd/m2 (default: the --grade file's, else 203, BT.2408): "
                             "where --baseline and the network's classical skip put SDR 100%%, and flat SDR graphics "
                             "land; the network expands a picture's highlights above it, as real SDR grades imply; "
                             "graded HDR often sits at 300-500")
    add_grade(parser)
    parser.add_argument("--peak-nits", type=float, default=1000.0,
                        help="no output pixel brighter than this, cd/m2 (default 1000, the mastering peak; 10000: no limit; "
                             "at most 1000 with --transfer hlg)")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32", "int8"], default="auto",
                        help="network compute precision (default auto: bf16 on CPUs with AVX512-BF16 or AMX, "
                             "and on GPUs of compute capability 8.0+; the choice is printed); "
                             "int8 runs on --engine litert or openvino")
    parser.add_argument("--engine", choices=["auto", "tf", "openvino", "litert"], default="auto",
                        help="what runs the network (default auto: OpenVINO for bf16 when it is installed and the CPU has AMX, "
                             "pip install \"sritm_tf[openvino]\", else TensorFlow); litert runs the TFLite model")
    parser.add_argument("--transfer", choices=("pq", "hlg"), default="pq",
                        help="output transfer: pq (HDR10, default) or hlg (BT.2100 HLG for a 1000 cd/m2 display, "
                             "for broadcast; no HDR10 metadata)")
    parser.add_argument("--tile", metavar="N|WxH",
                        help="LR tile size N or WxH for inference (default 640x360 in fp32, 960x540 in bf16, 480x270 "
                             "in int8: a 1080p frame under 3 GiB each way); smaller uses less memory")
    parser.add_argument("--crf", type=int, default=18, help=CRF_HELP)
    parser.add_argument("--preset", default="medium", help=PRESET_HELP)
    parser.add_argument("--field-order", choices=("auto", "tff", "bff", "progressive"), default="auto",
                        help="of an interlaced video (default auto: as the stream says; tff, bff: top or bottom field "
                             "first, deinterlaced whatever the stream says; progressive: not deinterlaced)")
    parser.add_argument("--deinterlace", choices=("frame", "field"), default="frame",
                        help="an interlaced video's output, deinterlaced with ffmpeg's bwdif: one frame per frame "
                             "(default: the source's rate) or per field (twice the rate, 50 frames/s from 25)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an output that exists (default: sritm convert refuses it; sritm convert-batch "
                             "skips its input, so that a re-run resumes)")
    parser.add_argument("--quiet", action="store_true",
                        help="print only warnings and failures (no progress bar, no summary)")
    return parser


def check_conversion(args):
    """The checks of the shared conversion options, before TensorFlow starts: tile, white
    and peak levels, encoder settings, precision and engine, and the weights file."""
    from sritm_tf.inference import parse_tile
    from sritm_tf.pretrained import check_weights_file
    from sritm_tf.grade import apply_grade
    from sritm_tf.video.hdr10 import check_encoder

    apply_grade(args)  # --white-nits from --grade, or 203
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
        if args.weights:
            check_weights_file(args.weights)


def network_setup(args):
    """(precision, engine, why the precision) from --precision and --engine; ("fp32", "tf", "")
    with --baseline. InputError for an engine that is not installed or does not run that precision."""
    from sritm_tf import engines
    from sritm_tf.precision import resolve

    if getattr(args, "baseline", False) or getattr(args, "baseline_only", False):
        return "fp32", "tf", ""
    chosen, why = ("int8", "as asked") if args.precision == "int8" else resolve(args.precision)
    return chosen, engines.resolve(args.engine, chosen)[0], why
