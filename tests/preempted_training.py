"""A deterministic tiny training run for tests/test_preemption.py to kill and resume (under
KERAS_BACKEND's backend).

    python tests/preempted_training.py RECORDS OUT_DIR [crawl]

With `crawl`, every file write of a checkpoint (whatever name the code writes it under, through
chimpact.storage) goes in eight slow pieces after printing CHECKPOINT WRITE, as on a slow
bucket, so that a test can kill it in the middle of one.
"""

import logging
import sys
import time

import tensorflow as tf

from chimpact import storage
from chimpact.training import model_folder, train
from model_checks import TINY

EPOCHS = 4


class CrawlingFile:
    """A file being written whose writes crawl: eight slow pieces each."""

    def __init__(self, file):
        self.file = file

    def write(self, data):
        print("CHECKPOINT WRITE", flush=True)
        piece = len(data) // 8 + 1
        for start in range(0, len(data), piece):
            self.file.write(data[start:start + piece])
            self.file.flush()
            time.sleep(0.2)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.file.__exit__(*exc)


def crawling(open_file):
    """storage.open_file whose files of checkpoints crawl, whatever name they are written under."""
    def open_crawling(path, mode="r"):
        file = open_file(path, mode)
        return CrawlingFile(file) if model_folder.CHECKPOINT in str(path) and "w" in mode else file

    return open_crawling


def main(records, out_dir, mode=""):
    logging.basicConfig(level=logging.INFO)  # as absl does for the entry scripts
    tf.config.experimental.enable_op_determinism()
    if mode == "crawl":
        storage.open_file = crawling(storage.open_file)
    train.train(records, out_dir, folds=[0], epochs=EPOCHS, batch_size=8, lr=3e-3, aug="a1",
                aug_prob=0.5, verbose=2, **TINY)


if __name__ == "__main__":
    main(*sys.argv[1:])
