"""`sritm info`: the network's size at a scale."""
from sritm_tf.commands import options


def register(subparsers):
    p = subparsers.add_parser("info", help="print the network's summary line and parameter count")
    options.add_scale(p)
    p.add_argument("--channels", type=int, default=64, help=options.CHANNELS_HELP)
    p.add_argument("--m", type=int, default=3, help=options.M_HELP)
    p.add_argument("--n", type=int, default=10, help=options.N_HELP)
    p.add_argument("--pretrain", action="store_true", help="the network without modulation")
    p.add_argument("--summary", action="store_true", help="print the full layer table too")
    p.set_defaults(func=run)


def run(args):
    from sritm_tf import build_deep_sritm

    model = build_deep_sritm(args.scale, args.channels, args.m, args.n, modulation=not args.pretrain)
    if args.summary:
        model.summary()
    params = model.count_params()
    print(f"{model.name}: scale x{args.scale}, channels={args.channels}, m={args.m}, n={args.n}, "
          f"modulation={'off' if args.pretrain else 'on'}, {params:,} parameters ({params / 1e6:.2f}M)")
    return 0
