"""sritm_tf: joint super-resolution and inverse tone-mapping (Deep SR-ITM) in Keras 3."""
from setuptools import find_packages, setup

setup(
    name="sritm_tf",
    version="0.1.0",
    description="Deep SR-ITM: LR SDR (BT.709) to HR HDR10 (BT.2020, PQ) with one Keras 3 network",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["sritm_tf", "sritm_tf.*"]),
    package_data={"sritm_tf": ["weights/*", "samples/*"]},
    include_package_data=True,
    install_requires=[
        "tensorflow>=2.16",  # Keras 3 era; no tensorflow-addons anywhere
        "keras>=3.0",
        "numpy>=1.23",
        "opencv-python-headless>=4.8",
        "matplotlib>=3.7",
        "OpenEXR>=3.2",
        "av>=12.0",
        "tqdm>=4.60",
        "pyyaml>=6.0",
        "tensorboard>=2.16",  # TensorFlow 2.21 no longer pulls it in; the trainer logs to it
    ],
    extras_require={
        "dev": [
            "pytest>=7.0",
            "colour-science>=0.4.4",
            "nbclient>=0.10",
            "nbformat>=5.9",
            "jupytext>=1.16",  # builds notebooks/*.ipynb from their .py sources
            "ipykernel>=6.0",
            "jax[cpu]>=0.4.30",
            "tensorflow-serving-api>=2.16",
        ],
        "litert": ["ai-edge-litert>=1.2"],
        "openvino": ["openvino>=2024.4", "nncf>=2.14"],  # sritm convert --engine openvino (int8: NNCF)
        "serving": ["tensorflow-serving-api>=2.16"],  # the gRPC client; REST needs nothing more
        "jax": ["jax>=0.4.30"],
        "beam": ["apache-beam>=2.60"],  # sritm convert-batch
    },
    entry_points={"console_scripts": ["sritm=sritm_tf.cli:main"]},
)
