"""Input pipeline throughput next to training speed: the pipeline should deliver
batches at least 5x faster than the model consumes them.

    sritm bench pipeline RECORDS_DIR [--batch-size 16] [--patch-size 48]
        [--channels 64 --m 3 --n 10] [--steps 20]
"""
import time

from sritm_tf.commands import options


def batches_per_second(ds, count):
    iterator = iter(ds)
    next(iterator)  # warm-up: file opening, first shuffle fill
    start = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return count / (time.perf_counter() - start)


def add_arguments(parser):
    parser.add_argument("records")
    parser.add_argument("--batch-size", type=int, default=16, help=f"{options.BATCH_SIZE_HELP} (default 16)")
    parser.add_argument("--patch-size", type=int, default=None,
                        help=f"{options.PATCH_SIZE_HELP}, a random crop of each record (default: as stored)")
    options.add_scale(parser)
    parser.add_argument("--channels", type=int, default=64, help=options.CHANNELS_HELP)
    parser.add_argument("--m", type=int, default=3, help=options.M_HELP)
    parser.add_argument("--n", type=int, default=10, help=options.N_HELP)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--pipeline-batches", type=int, default=200)


def run(args):
    import keras

    from sritm_tf.pipeline import make_dataset
    from sritm_tf.train.config import TrainConfig
    from sritm_tf.train.networks import build_model, compile_model


    ds = make_dataset(args.records, args.batch_size, args.scale, seed=0, patch_size=args.patch_size)
    pipeline_rate = batches_per_second(ds, args.pipeline_batches)

    cfg = TrainConfig(scale=args.scale, channels=args.channels, m=args.m, n=args.n)
    model = compile_model(build_model(cfg), 1e-4)
    batch = next(iter(ds))
    model.train_on_batch(*batch)  # trace / compile
    start = time.perf_counter()
    for _ in range(args.steps):
        model.train_on_batch(*batch)
    train_rate = args.steps / (time.perf_counter() - start)

    sdr, hdr = batch
    print(f"backend {keras.backend.backend()}, batch {args.batch_size}, LR {tuple(sdr.shape[1:3])} -> HR {tuple(hdr.shape[1:3])}")
    print(f"pipeline: {pipeline_rate:8.2f} batches/s")
    print(f"training: {train_rate:8.2f} steps/s  (channels {args.channels}, m {args.m}, n {args.n})")
    ratio = pipeline_rate / train_rate
    print(f"pipeline / training = {ratio:.1f}x  ({'OK' if ratio >= 5 else 'below'} the 5x target)")
    return 0
