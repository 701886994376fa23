"""`sritm info`: the network's size and cost at a scale."""
from sritm_tf.commands import options
from sritm_tf.presets import MODELS


def register(subparsers):
    p = subparsers.add_parser("info", help="print the network's summary line, parameters and GFLOP per 4K frame")
    options.add_scale(p)
    p.add_argument("--model", choices=list(MODELS), default="full", help=options.MODEL_HELP.split(";")[0])
    p.add_argument("--channels", type=int, help="feature channels (default: --model's, full 64)")
    p.add_argument("--m", type=int, help="base/detail block pairs (default: --model's, full 3)")
    p.add_argument("--n", type=int, help="fusion ResBlocks (default: --model's, full 10)")
    p.add_argument("--pretrain", action="store_true", help="the network without modulation")
    p.add_argument("--summary", action="store_true", help="print the full layer table too")
    p.set_defaults(func=run)


def run(args):
    from sritm_tf import build_deep_sritm
    from sritm_tf.benchmarks import UHD
    from sritm_tf.flops import model_macs

    size = {key: getattr(args, key) if getattr(args, key) is not None else value
            for key, value in MODELS[args.model].items()}
    name = f"deep_sritm_{args.model}_x{args.scale}" if args.model != "full" and size == MODELS[args.model] else None
    model = build_deep_sritm(args.scale, modulation=not args.pretrain, skip="classical", name=name, **size)
    if args.summary:
        model.summary()
    params = model.count_params()
    gflop = 2 * model_macs(model, UHD[0] // args.scale, UHD[1] // args.scale) / 1e9
    print(f"{model.name}: scale x{args.scale}, channels={size['channels']}, m={size['m']}, n={size['n']}, "
          f"modulation={'off' if args.pretrain else 'on'}, {params:,} parameters ({params / 1e6:.2f}M), "
          f"gflop_per_4k_frame={gflop:.0f}")
    return 0
