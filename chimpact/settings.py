"""The names each setting can take, in a module that imports nothing heavy: the entry scripts
define their flags from it before TensorFlow loads (a fast --help, usage errors in a blink), and
the modules that act on a setting take the same names from it."""

# --family values and the frames per sequence each reads by default.
FAMILIES = {"cnn_lstm": 7, "stacked": 5, "single": 1}
# --backbone values (chimpact.training.model builds each).
BACKBONES = ("efficientnet_b0", "efficientnet_b7", "efficientnet_v2_s", "efficientnet_v2_m",
             "efficientnet_v2_l", "tiny")
# --input_scaling values: what the backbone's convolutions see of 0..255 pixels. imagenet, the
# backbone's own preprocessing (ImageNet mean and deviation for EfficientNet V1, -1..1 for V2);
# unit, x / 255 alone, as the reference fed its EfficientNet-B0 (its norm()), which its trained
# weights expect.
INPUT_SCALINGS = ("imagenet", "unit")
# How frames of another size reach a model's size (chimpact.data.resize): ffmpeg, scaled while
# decoding raw videos and resized with antialiasing from records (chimpact's models); reference,
# decoded at full size and resized bilinearly without antialiasing, truncated to uint8, as the
# reference's parse did (its imported models).
FRAME_RESIZES = ("ffmpeg", "reference")
# --aug values (chimpact.training.augment holds each set's ops).
AUG_SETS = ("none", "a1", "a2", "a4")
# --mixed_precision values: the Keras dtype policy a model folder is trained and predicted under.
PRECISIONS = ("none", "mixed_float16", "mixed_bfloat16")
# --output_bias values: where the model's output starts, the training folds' median distance or
# zero (Keras' default, which the reference had).
OUTPUT_BIASES = ("median", "zero")
# --loss, --schedule and --optimizer values.
LOSSES = ("mae", "huber")
SCHEDULES = ("plateau", "cosine")
OPTIMIZERS = ("adam", "adamw")
# --strategy values (tf.distribute).
STRATEGIES = ("auto", "tpu", "mirrored", "multiworker", "default")
# --backend values: the Keras backend that trains and predicts (TensorFlow reads the input under
# either).
BACKENDS = ("tensorflow", "jax")
# --aggregate values: how folds' and test-time views' predictions combine.
AGGREGATES = ("mean", "median")
# --gamma values of frame extraction.
GAMMA_MODES = ("auto", "on", "off")
# The reference shuffled its label table with random_state=33 before writing its records.
SHUFFLE_SEED = 33
