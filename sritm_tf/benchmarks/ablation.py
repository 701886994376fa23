"""The ablations of the paper retrained: Tables 1-3, PSNR / SSIM beside the published numbers.

    sritm bench ablation data/train_x2 --val data/val_x2 --steps 2000
    KERAS_BACKEND=jax sritm bench ablation data/train_x2 --val data/val_x2 --steps 100000 --tables 3

Every variant is trained for the same `--steps` on the same records (`sritm
prepare` output), with the same seed (same initialisation where the layers
agree, same stream of batches), by the trainer's compile (`sritm_tf.train.networks.
compile_model`: Adam + MSE, or `--recipe paper`), then scored on held-out
records (`--val`; default: the last shard of DATA, which is then left out of
training): mean PSNR and SSIM per record on the network's Y'CbCr
(`sritm_tf.metrics` training metrics, max 1).

Table 1: the toy network of Fig. 4 (`sritm_tf.model.build_toy_network`) fed
with the image, its base / detail layers, stacked or in separate passes
(`model.TABLE1`), the filters of each variant set so that its parameter count
is nearest that of column (d) (`model.matched_channels`). Table 2: the inputs of
the shared modulation features of the Fig. 4 network (`model.TABLE2`). Table 3:
the full Deep SR-ITM with the guided-filter decomposition, the skip
connections and the modulation switched (`build_deep_sritm(decomposition=,
skips=, modulation=)`). Variants that are the same network (Table 2 (c) is
Table 1 (d)) are trained once.

The paper's numbers: only their ranges over each table's columns are
transcribed here (Table 1 38.11-38.46 dB, Table 2 38.43-38.52 dB, Table 3
35.29-35.59 dB); its per-column values are not transcribed, so the tables
print the range, not a value per column. Its numbers come from full-length training on its own data; a short
run here checks the machinery, not the paper.
"""
import os
import time

from sritm_tf.commands import options

PAPER_RANGES = {1: (38.11, 38.46), 2: (38.43, 38.52), 3: (35.29, 35.59)}
LABELS = {"image": "I", "base": "I_b", "detail": "I_d"}


def _inputs(components):
    names = [LABELS[c] for c in components]
    return names[0] if len(names) == 1 else "[" + ", ".join(names) + "]"


def variants(table, args):
    """[(column, rows, key, build)] of `table`: rows are the table's description
    cells, `key` names the network (equal keys: the same network), build() makes it."""
    from sritm_tf.model import FIG4_PASSES, TABLE1, TABLE2, build_deep_sritm, build_toy_network, matched_channels

    toy = dict(scale=args.scale, blocks=args.toy_blocks)
    out = []
    if table == 1:
        target = build_toy_network(channels=args.toy_channels, passes=TABLE1["d"], **toy).count_params()
        for column, passes in TABLE1.items():
            channels = args.toy_channels
            if column != "d":
                channels, _ = matched_channels(target, lambda c: build_toy_network(channels=c, passes=passes, **toy))
            rows = {"passes": str(len(passes)), "inputs": "; ".join(_inputs(p) for p in passes), "filters": str(channels)}
            out.append((column, rows, ("toy", passes, passes, channels),
                        lambda c=channels, p=passes: build_toy_network(channels=c, passes=p, **toy)))
    elif table == 2:
        for column, smf in TABLE2.items():
            rows = {"SMF_b input": _inputs(smf[0]), "SMF_d input": _inputs(smf[1])}
            out.append((column, rows, ("toy", FIG4_PASSES, smf, args.toy_channels),
                        lambda s=smf: build_toy_network(channels=args.toy_channels, passes=FIG4_PASSES, smf_inputs=s,
                                                        **toy)))
    else:
        for column, (gf, skips, modulation) in zip("abcde", [(0, 0, 0), (1, 0, 0), (1, 1, 0), (1, 0, 1), (1, 1, 1)]):
            switches = dict(decomposition=bool(gf), skips=bool(skips), modulation=bool(modulation))
            rows = {"GF decomposition": "x" if gf else "", "skip connections": "x" if skips else "",
                    "modulation": "x" if modulation else ""}
            out.append((column, rows, ("full",) + tuple(switches.values()),
                        lambda s=switches: build_deep_sritm(args.scale, args.channels, args.m, args.n, **s)))
    return out


def split_records(data, val):
    """(training shards, held-out shards): `val`'s shards, or the last shard of `data`."""
    from sritm_tf.errors import InputError
    from sritm_tf.pipeline import list_shards

    def shards(what, option):
        try:
            return list_shards(what)
        except FileNotFoundError as err:
            raise InputError(f"{option}{err}") from None

    train = shards(data, "")
    if val:
        return train, shards(val, "--val ")
    if len(train) < 2:
        raise InputError(f"{data}: one shard; pass --val with held-out records")
    return train[:-1], train[-1:]


def held_out_dataset(val_files, scale):
    """The held-out records, one per batch, in file order, with a known length."""
    import tensorflow as tf

    from sritm_tf.pipeline import count_records, make_dataset

    held_out = make_dataset(val_files, 1, scale, training=False)
    return held_out.apply(tf.data.experimental.assert_cardinality(count_records(val_files)))


def train_and_score(build, args, train_files, held_out):
    """Trains `build()` for `args.steps` steps from `args.seed` on a fresh, seeded
    stream of `train_files` (the same batches for every variant), then scores it on
    `held_out`; {params, psnr, ssim, seconds}."""
    import keras

    from sritm_tf.pipeline import make_dataset
    from sritm_tf.train.config import xavier_normal
    from sritm_tf.train.networks import compile_model

    keras.utils.set_random_seed(args.seed)
    model = build()
    if args.recipe == "paper":
        xavier_normal(model)
    compile_model(model, args.lr, args.recipe)
    model.run_eagerly = args.eager
    start = time.perf_counter()
    data = make_dataset(train_files, args.batch_size, args.scale, training=True, seed=args.seed,
                        patch_size=args.patch_size,
                        augment=args.recipe != "paper")
    model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0, shuffle=False)
    scores = model.evaluate(held_out, verbose=0, return_dict=True)
    return {"params": model.count_params(), "psnr": float(scores["psnr"]), "ssim": float(scores["ssim"]),
            "seconds": time.perf_counter() - start}


def format_table(table, columns, results):
    """A markdown table laid out like the paper's Table `table`: one column per variant."""
    low, high = PAPER_RANGES[table]
    rows = list(columns[0][1])
    lines = [f"| Table {table} | " + " | ".join(f"({c})" for c, _, _ in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for row in rows:
        lines.append(f"| {row} | " + " | ".join(cells[row] for _, cells, _ in columns) + " |")
    lines.append("| parameters | " + " | ".join(f"{results[key]['params']:,}" for _, _, key in columns) + " |")
    lines.append("| PSNR (dB), ours | " + " | ".join(f"{results[key]['psnr']:.2f}" for _, _, key in columns) + " |")
    lines.append("| SSIM, ours | " + " | ".join(f"{results[key]['ssim']:.4f}" for _, _, key in columns) + " |")
    lines.append(f"| PSNR (dB), paper | {low:.2f}-{high:.2f} over (a)-({columns[-1][0]}), per column: see the paper |"
                 + " |" * (len(columns) - 1))
    return "\n".join(lines)


def add_arguments(parser):
    parser.add_argument("data", help="training records (`sritm prepare` output: folder, glob or shard)")
    parser.add_argument("--val", help="held-out records (default: the last shard of DATA, left out of training)")
    parser.add_argument("--tables", type=int, nargs="+", choices=(1, 2, 3), default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=1000, help="training steps per variant")
    parser.add_argument("--batch-size", type=int, default=16, help=f"{options.BATCH_SIZE_HELP} (default 16)")
    parser.add_argument("--patch-size", type=int, default=None,
                        help=f"{options.PATCH_SIZE_HELP}, a random crop of each record (default: as stored)")
    options.add_scale(parser)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--recipe", choices=("ours", "paper"), default="ours",
                        help="compile as `sritm train --recipe` (optimiser, loss, init, augmentation)")
    parser.add_argument("--seed", type=int, default=0, help=options.SEED_HELP)
    parser.add_argument("--eager", action="store_true",
                        help="run eagerly, without graph tracing: quicker for a smoke run of a few steps")
    parser.add_argument("--toy-channels", type=int, default=32, help="filters of the Fig. 4 toy network")
    parser.add_argument("--toy-blocks", type=int, default=4, help="residual blocks per pass of the toy network")
    parser.add_argument("--channels", type=int, default=64, help="Table 3: filters of Deep SR-ITM")
    parser.add_argument("--m", type=int, default=3, help="Table 3: ResBlock pairs per pass")
    parser.add_argument("--n", type=int, default=10, help="Table 3: fusion ResBlocks")


def run(args):
    import keras

    train_files, val_files = split_records(args.data, args.val)
    held = "--val" if args.val else f"last shard of DATA ({os.path.basename(val_files[0])})"
    print(f"ablation: x{args.scale}, {args.steps} steps of batch {args.batch_size} per variant, seed {args.seed}, "
          f"recipe {args.recipe}, lr {args.lr:g}, backend {keras.backend.backend()}; "
          f"{len(train_files)} training shard(s), held out: {held}", flush=True)
    held_out = held_out_dataset(val_files, args.scale)
    results = {}
    for table in args.tables:
        columns = variants(table, args)
        for column, _, key, build in columns:
            if key not in results:
                results[key] = train_and_score(build, args, train_files, held_out)
            r = results[key]
            print(f"table {table} ({column}): {r['params']:,} parameters, PSNR {r['psnr']:.2f} dB, "
                  f"SSIM {r['ssim']:.4f}, {r['seconds']:.1f} s", flush=True)
        print()
        print(format_table(table, [(c, rows, key) for c, rows, key, _ in columns], results))
        print(flush=True)
    return 0
