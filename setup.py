"""chimpact: camera-trap distance estimation from video (Deep Chimpact, 3rd-place method)."""

from setuptools import find_packages, setup

setup(
    name="chimpact",
    version="0.1.0",
    description="How far an animal is from a camera trap, from the video alone.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["chimpact", "chimpact.*"]),
    install_requires=[
        # The default `tensorflow` wheel is the CPU build on Linux x86_64; GPUs need
        # `tensorflow[and-cuda]`, TPU VMs keep their preinstalled TensorFlow (>=2.16).
        "tensorflow>=2.16",
        "keras>=3.0",
        "tensorboard",
        "ffmpeg-python>=0.2",
        "imageio-ffmpeg>=0.5",
        "absl-py",
        "numpy",
        "pandas",
        "scikit-learn",
        "tqdm",
        "matplotlib",
        "pillow",
    ],
    extras_require={
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        "test": ["pytest>=7"],
    },
)
