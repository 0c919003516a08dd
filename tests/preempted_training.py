"""A deterministic tiny training run for tests/test_preemption.py to kill and resume.

    python tests/preempted_training.py RECORDS OUT_DIR [crawl]

With `crawl`, every file write of a checkpoint (whatever name the code writes it under) goes in
eight slow pieces after printing CHECKPOINT WRITE, as on a slow bucket, so that a test can kill
it in the middle of one.
"""

import sys
import time

import tensorflow as tf

from chimpact import train
from model_checks import TINY

EPOCHS = 4


class CrawlingFile(tf.io.gfile.GFile):
    """tf.io.gfile.GFile whose writes of checkpoint files crawl."""

    def write(self, data):
        if train.CHECKPOINT not in self.name:
            return super().write(data)
        print("CHECKPOINT WRITE", flush=True)
        piece = len(data) // 8 + 1
        for start in range(0, len(data), piece):
            super().write(data[start:start + piece])
            self.flush()
            time.sleep(0.2)


def main(records, out_dir, mode=""):
    tf.config.experimental.enable_op_determinism()
    if mode == "crawl":
        tf.io.gfile.GFile = CrawlingFile
    train.train(records, out_dir, folds=[0], epochs=EPOCHS, batch_size=8, lr=3e-3, aug="a1",
                aug_prob=0.5, verbose=2, **TINY)


if __name__ == "__main__":
    main(*sys.argv[1:])
