"""`sritm bench speed|memory|train|pipeline|tflite|stream|ablation|batch|gpu|convert`: the benchmarks of
`sritm_tf.benchmarks`, one module each."""
import importlib

BENCHMARKS = {
    "speed": "GFLOP/s and seconds per 4K frame against the CPU's physical peak",
    "memory": "peak RSS of a 1080p -> 4K conversion, tiled vs whole frame",
    "train": "patches per second of a training step and of the input pipeline",
    "pipeline": "input pipeline next to training speed on your own records",
    "tflite": "TFLite variants: PSNR on the graded pairs and latency per tile",
    "stream": "peak temporary disk and RSS of a streamed video conversion, extrapolated to 1 min of 4K",
    "ablation": "the paper's Tables 1-3 retrained on your records: PSNR / SSIM and parameters per variant",
    "batch": "sritm convert-batch on a 1-minute clip: wall time, segments, peak temporary disk, resume, vs single",
    "gpu": "seconds per 4K frame on a GPU (JAX) against its measured matrix peak",
    "convert": "frames per second of each stage of sritm convert of a clip (decode .. encode) and the one that limits",
}


def register(subparsers):
    p = subparsers.add_parser("bench", help="benchmarks: " + ", ".join(BENCHMARKS))
    sub = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for name, text in BENCHMARKS.items():
        module = importlib.import_module(f"sritm_tf.benchmarks.{name}")  # no TensorFlow at import
        bench = sub.add_parser(name, help=text, description=module.__doc__.split("\n\n")[0])
        module.add_arguments(bench)
        bench.set_defaults(func=module.run)
