"""Stage 2, from records to a model folder: the input pipeline and its augmentations (pipeline,
augment, crop), the model families (model), tf.distribute strategies (strategy), preemption-safe
checkpoints (checkpoint), fold-by-fold training (train), pseudo-labels (pseudo) and the model
folder's layout (model_folder)."""
