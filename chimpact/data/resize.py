"""How frames of another size are brought to a model's: each model folder says which way
(config.json `frame_resize`, settings.FRAME_RESIZES), so that it reads frames as it was trained.

chimpact's own models: ffmpeg's scaler while decoding raw videos, an antialiased resize rounded
to uint8 for stored frames. The reference's imported models: full-size frames resized with
tf.image.resize (bilinear, no antialiasing) and cast to uint8, which truncates, as its parse did.
"""

import tensorflow as tf


def resize_frames(frames, size, frame_resize="ffmpeg"):
    """uint8 frames [..., H, W, 3] at `size` (height, width), resized as `frame_resize` says."""
    if frame_resize == "reference":
        return tf.cast(tf.image.resize(frames, size), tf.uint8)
    return tf.saturate_cast(tf.round(tf.image.resize(frames, size, antialias=True)), tf.uint8)


def decodes_full_size(frame_resize):
    """Whether raw videos are decoded at their own size and resized afterwards (reference),
    rather than scaled by ffmpeg while decoding."""
    return frame_resize == "reference"
