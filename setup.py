"""exif-jax: EXIF-as-Language (Zheng et al., CVPR 2023) in JAX/Flax NNX, for TPU pods and GPU clusters."""
from setuptools import find_packages, setup

# Pinned for Python 3.11: the versions the test suite runs against.
INSTALL_REQUIRES = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "grain==0.2.18",
    "array-record==0.8.6",
    "tensorflow-datasets==4.9.10",
    "transformers>=5.0,<6",
    "tokenizers==0.23.3",
    "safetensors==0.8.0",
    "ml_collections==1.1.0",
    "absl-py==2.5.1",
    "scikit-learn==1.9.1",
    "scipy==1.17.1",
    "numpy==2.4.6",
    "pillow==13.0.0",
    "ExifRead==3.5.1",
    "google-crc32c==1.9.0",
    "protobuf==7.36.2",
    "tensorboardX==2.6.5",
    "opencv-python-headless==5.0.0.93",
    "matplotlib==3.11.2",  # splice report figures (colour bars, panels, ROC/PR curves, histograms)
]

EXTRAS = {
    # Conversion to/from PyTorch and parity checks. torch 2.14.1 + torchvision 0.29.1 are the pair that resolve here.
    "torch": ["torch==2.14.1", "torchvision==0.29.1"],
    "test": ["pytest==9.2.0", "hypothesis==6.170.17",
             "selenium==4.51.0"],  # drives Debian's chromium + chromium-driver in tests/test_splice_report.py
    # Ahead-of-time compilation for TPU / GPU topologies without the hardware (`exif-jax compile`).
    "tpu": ["libtpu==0.0.42.*"],
    "cuda-aot": ["jax-cuda12-plugin==0.10.2", "jax-cuda12-pjrt==0.10.2"],
    "wandb": ["wandb"],
    # `exif-jax ingest --runner beam` and img2dataset downloads. Both declare upper bounds below the pins above
    # (apache-beam 2.77: protobuf<7, pillow<13, pyarrow<26; img2dataset 1.47: opencv-python-headless<5,
    # webdataset<0.3), so pip refuses these extras beside the pinned stack; both run with it (tested): install them
    # with `pip install --no-deps -r requirements-scale.txt` (README, Prepare data).
    "beam": ["apache-beam==2.77.0"],
    "img2dataset": ["img2dataset==1.47.0"],
}

setup(
    name="exif-jax",
    version="0.1.0",
    description=__doc__,
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["exif_jax", "exif_jax.*", "eval", "eval.*", "configs", "configs.*"]),
    package_data={"exif_jax": ["assets/*", "assets/**/*"]},
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["exif-jax=exif_jax.cli:main"]},
)
