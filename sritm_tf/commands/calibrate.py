"""`sritm calibrate PAIRS_DIR -o grade.json`: the SDR reference white at which the network's
output fits a show's graded frames best (`sritm_tf.grade`), for `--grade grade.json` of
`sritm convert`, `convert-batch`, `eval` and `train`."""
import os
import sys

from sritm_tf.commands import options


def register(subparsers):
    p = subparsers.add_parser("calibrate", help="fit the grade's SDR white (--white-nits) to a few graded SDR/HDR10 "
                                                "pairs, for --grade", description=__doc__)
    p.add_argument("pairs_dir", metavar="PAIRS_DIR",
                   help="folder of <name>_sdr.* / <name>_hdr.* pairs (HR, as sritm eval reads them)")
    p.add_argument("-o", "--output", required=True, metavar="GRADE_JSON", help="the grade file to write")
    options.add_scale(p)
    options.add_weights(p)
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                   help="network compute precision (default auto: bf16 where the CPU has bfloat16 units or the GPU "
                        "is of compute capability 8.0+)")
    p.add_argument("--report", metavar="DIR",
                   help="also write an HTML page of the pairs (previews, before/after slider, error heat maps), "
                        "as sritm eval --report")
    p.add_argument("--overwrite", action="store_true", help=options.OVERWRITE_HELP)
    p.set_defaults(func=run, check=check)


def check(args):
    """Before TensorFlow starts: the pairs (each reads, sizes match), the output and the weights file."""
    from sritm_tf.convert import check_output
    from sritm_tf.data.pairs import check_pairs
    from sritm_tf.errors import UserError
    from sritm_tf.pretrained import check_weights_file

    if not os.path.isdir(args.pairs_dir):
        raise UserError(f"{args.pairs_dir}: not a folder")
    check_pairs(args.pairs_dir)
    check_output(args.output, args.overwrite)
    if args.report:
        from sritm_tf.report import check_folder

        check_folder(args.report, args.overwrite)
    if args.weights:
        check_weights_file(args.weights)


def run(args):
    from sritm_tf.grade import calibrate, format_results, report_entries, write_grade
    from sritm_tf.precision import resolve

    chosen, why = resolve(args.precision)
    print(f"network in {chosen} ({why})", file=sys.stderr)
    grade, results = calibrate(args.pairs_dir, args.scale, args.weights, chosen,
                               progress=lambda name: print(f"{name} done", file=sys.stderr, flush=True))
    print(format_results(grade, results))
    write_grade(args.output, grade)
    print(f"wrote {args.output}")
    if args.report:
        from sritm_tf.report import write_report

        print(f"wrote {write_report(args.report, report_entries(grade, results), 'sritm calibrate')}")
    return 0
