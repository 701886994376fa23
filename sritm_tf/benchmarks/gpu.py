"""Inference speed of Deep SR-ITM on a GPU (JAX) against the GPU's measured matrix peak.

In one run, on the first JAX device (`KERAS_BACKEND=jax`; no TensorFlow needed):

1. the measured peak: a size^3 matrix product in bfloat16 and in float32 at XLA's default
   precision (TF32 tensor cores on Ampere and newer), the practical ceilings;
2. per scale and precision: seconds per whole 1080p -> 4K frame (x2; at x4 a 960x540 LR
   frame) of the classical-skip network, no tiling, the frame already on the device; achieved
   GFLOP/s (`sritm_tf.flops`, useful output only) and its ratio to the matching peak.

`sritm bench speed --engines jax-bf16` times the same network through `predict` with tiles,
against the CPU's peak; this one divides by the accelerator's own peak, and jits the forward
pass with the weights folded in as constants of the compiled graph (as a frozen deployment
graph has them). Rows with `--frame` are extrapolated to a 4K frame (marked *).

    KERAS_BACKEND=jax sritm bench gpu
    KERAS_BACKEND=jax sritm bench gpu --scale 2 --frame 480x270   # a smoke run
"""
from sritm_tf.benchmarks import UHD, best_time


def add_arguments(p):
    p.add_argument("--scale", type=int, nargs="+", choices=(2, 4), default=[2, 4])
    p.add_argument("--frame", metavar="WxH", help="LR frame size (default: the LR of a 4K frame)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement, the best is kept")
    p.add_argument("--peak-size", type=int, default=8192, help="side of the matrix product of the peak")


def measured_peaks(size, repeats):
    """{"bf16"|"fp32": GFLOP/s} of a size^3 matrix product on the first JAX device."""
    import jax
    import jax.numpy as jnp

    out = {}
    for name, dtype in (("bf16", jnp.bfloat16), ("fp32", jnp.float32)):
        a = jax.random.normal(jax.random.key(0), (size, size), dtype)
        matmul = jax.jit(lambda x: x @ x)
        matmul(a).block_until_ready()  # compile
        out[name] = 2 * size**3 / best_time(lambda: matmul(a).block_until_ready(), repeats) / 1e9
    return out


def frame_row(scale, precision, frame, repeats):
    """{"gflops", "s_per_4k_frame"} of the x`scale` network in `precision` on one
    (height, width) LR frame, after a compiling call."""
    import jax
    import jax.numpy as jnp

    from sritm_tf.flops import model_macs
    from sritm_tf.model import build_deep_sritm

    model = build_deep_sritm(scale=scale, skip="classical", precision=precision)
    x = jnp.asarray(jax.random.uniform(jax.random.key(1), (1,) + frame + (3,)))
    forward = jax.jit(lambda v: model(v, training=False))
    forward(x).block_until_ready()  # compile
    seconds = best_time(lambda: forward(x).block_until_ready(), repeats)
    return {"gflops": 2 * model_macs(model, *frame) / seconds / 1e9,
            "s_per_4k_frame": seconds * UHD[0] * UHD[1] / scale**2 / (frame[0] * frame[1])}


def run(args):
    from sritm_tf.errors import UserError
    from sritm_tf.precision import keras_backend
    from sritm_tf.sizes import parse_shape

    if keras_backend() != "jax":  # found without importing Keras (which would start TensorFlow)
        raise UserError("bench gpu runs on JAX: set KERAS_BACKEND=jax")
    frame_arg = parse_shape(args.frame, "--frame") if args.frame else None  # (h, w)

    import jax
    import keras

    device = jax.devices()[0]
    print(f"device: {device.device_kind} ({device.platform}), jax {jax.__version__}, keras {keras.__version__}")
    peaks = measured_peaks(args.peak_size, args.repeats)
    print(f"measured peak ({args.peak_size}^3 matmul), GFLOP/s: bf16 {peaks['bf16']:.1f}, "
          f"fp32 at XLA's default precision {peaks['fp32']:.1f}")
    print("| scale | precision | LR frame | s per 4K frame | GFLOP/s | of measured peak |")
    print("|---|---|---|---|---|---|")
    for scale in args.scale:
        frame = frame_arg or (UHD[0] // scale, UHD[1] // scale)
        for precision in ("fp32", "bf16"):
            row = frame_row(scale, precision, frame, args.repeats)
            print(f"| x{scale} | {precision} | {frame[1]}x{frame[0]} | {row['s_per_4k_frame']:.3f}"
                  f"{'*' if frame_arg else ''} | {row['gflops']:.1f} | {row['gflops'] / peaks[precision]:.3f} |",
                  flush=True)
    return 0
