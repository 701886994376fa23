"""Compute precision of the network: float32, or bfloat16 convolutions where the
hardware runs them faster.

`bf16` builds the network under Keras' "mixed_bfloat16" policy: convolutions,
ReLUs, sums and products compute in bfloat16 with float32 weights, while the
guided filter, the detail division, the bicubic and classical skips, the last
convolution and the output stay float32 (their layers pin dtype="float32").
Weights are float32 either way, so saved files do not depend on it.
"""
import os

PRECISIONS = ("auto", "bf16", "fp32")
POLICIES = {"bf16": "mixed_bfloat16", "fp32": "float32"}


def cpu_flags():
    """The instruction-set flags of this machine's CPU (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_units(flags=None):
    """Which bfloat16 matrix units the CPU has: "amx_bf16" (Intel AMX tiles),
    "avx512_bf16" (AVX-512 BF16 dot products) or None."""
    flags = cpu_flags() if flags is None else flags
    for unit in ("amx_bf16", "avx512_bf16"):
        if unit in flags:
            return unit
    return None


def keras_backend():
    """The Keras backend, found as Keras finds it (KERAS_BACKEND, else keras.json under
    KERAS_HOME or ~/.keras, else tensorflow) without importing Keras, which would start
    TensorFlow before a command has checked its arguments."""
    import json
    import sys

    if "keras" in sys.modules:
        return sys.modules["keras"].config.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def nvidia_gpus():
    """Whether the NVIDIA driver lists a GPU (Linux /proc/driver/nvidia): checked before
    TensorFlow is asked, so that a machine without one never starts it here."""
    import glob

    return bool(glob.glob("/proc/driver/nvidia/gpus/*"))


def gpu_bf16():
    """Why the Keras backend's GPU runs bfloat16 (a CUDA GPU of compute capability
    8.0 or newer: Ampere, Hopper), or None where it has none."""
    backend = keras_backend()
    if backend == "jax":
        import jax

        if jax.default_backend() != "gpu":
            return None
        capability = getattr(jax.devices()[0], "compute_capability", None)  # "9.0" on CUDA
        try:
            major, minor = (int(part) for part in str(capability).split(".")[:2])
        except ValueError:
            return "JAX on a GPU"  # not CUDA (ROCm): its bf16 units are not graded this way
        if (major, minor) >= (8, 0):
            return f"JAX on a GPU of compute capability {major}.{minor}"
        return None
    if backend == "tensorflow" and nvidia_gpus():
        from sritm_tf.fileio import captured_stderr

        with captured_stderr():  # TensorFlow's start-up lines (cli.quiet_tensorflow_start)
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
        for gpu in gpus:
            major, minor = tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
            if (major, minor) >= (8, 0):
                return f"TensorFlow on a GPU of compute capability {major}.{minor}"
    return None


def resolve(precision="auto", flags=None):
    """(precision, reason): "bf16" or "fp32" for `precision` in PRECISIONS. auto picks
    bf16 on a GPU with bfloat16 (`gpu_bf16`) or a CPU with bf16 units."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision, "as asked"
    gpu = gpu_bf16()
    if gpu:
        return "bf16", gpu
    unit = bf16_units(flags)
    if unit:
        return "bf16", f"the CPU has {unit}"
    return "fp32", "the CPU has no bfloat16 units"


def policy(precision):
    """The Keras dtype policy name of "bf16" / "fp32"."""
    return POLICIES[precision]
