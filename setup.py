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
    # The presets travel with the package: `chimpact train --preset=NAME` from any folder.
    package_data={"chimpact.presets": ["*.flags"]},
    # The entry scripts (they define and read the flags), what they share (chimpact_flags) and
    # one command that runs them by name.
    py_modules=["chimpact_flags"],
    scripts=["create_frames.py", "create_tfrecords.py", "run_train.py", "run_infer.py",
             "run_field.py", "ensemble.py", "import_weights.py"],
    entry_points={"console_scripts": ["chimpact = chimpact.commands:main"]},
    # TensorFlow 2.16+ comes from the platform's own distribution, never named here: pip counts
    # tensorflow, tensorflow-cpu and tensorflow-tpu as different packages, and installing one
    # over another overwrites the same `tensorflow/` folder (a TPU VM's TensorFlow above all).
    # Pick an extra: [cpu] or [gpu]; on a TPU VM none (its tensorflow-tpu stays). The entry
    # scripts say in one line when no TensorFlow 2.16+ is importable.
    install_requires=[
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
        # CRC-32C for TFRecord framing in create_tfrecords.py's worker processes, which must not
        # run TensorFlow (chimpact.data.tfrecord).
        "google-crc32c>=1.5",
    ],
    extras_require={
        "cpu": ["tensorflow-cpu>=2.16"],
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        # Keras on JAX (--backend=jax, docs/tpu-jax.md), TensorFlow's CPU build reading the
        # input beside it: [jax] on CPUs (tested: jax 0.10.2 with Keras 3.15 and TensorFlow
        # 2.21), [tpu] on a TPU VM (v4, v5e, v6e; its image has no TensorFlow to overwrite),
        # [cuda] on NVIDIA GPUs (CUDA 12 wheels; TensorFlow stays off the GPUs).
        "jax": ["jax>=0.4.30", "tensorflow-cpu>=2.16"],
        "tpu": ["jax[tpu]>=0.4.30", "tensorflow-cpu>=2.16"],
        "cuda": ["jax[cuda12]>=0.4.30", "tensorflow-cpu>=2.16"],
        # --runner=beam (create_frames.py, create_tfrecords.py, run_field.py), with Dataflow's
        # client. apache-beam pins protobuf below 7; TensorFlow 2.21 takes 6.31 or newer: pip
        # settles on protobuf 6.33 (tested: apache-beam 2.77.0 with TensorFlow 2.21.0; pip
        # resolves 2.16.2 with protobuf 4.25 and 2.20.0 with 6.33 too).
        "beam": ["apache-beam[gcp]>=2.60"],
        # The tests run the Beam path on Beam's local runner: no Google Cloud client needed;
        # frictionless validates the Camtrap DP package offline, as the README says;
        # efficientnet 1.1.1 builds the reference's own model (tests/reference_model.py), to
        # prove that imported weights predict as it did. It runs on tf-keras, which names
        # `tensorflow` and would install it over tensorflow-cpu: `make setup` installs the
        # tf-keras of the installed TensorFlow without its dependencies.
        "test": ["pytest>=7", "pytest-xdist>=3", "apache-beam>=2.60", "frictionless>=5",
                 "efficientnet==1.1.1"],
    },
)
