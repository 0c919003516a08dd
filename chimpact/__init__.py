"""chimpact: how far an animal is from a camera trap, from the video alone.

One folder a stage, in the order data flows; a stage imports only itself, earlier stages and the
base (errors, storage, cli, settings, presets):

    data/      videos -> frames -> records (create_frames.py, create_tfrecords.py)
    training/  records -> a model folder of fold models (run_train.py)
    predict/   model folder -> test predictions, out-of-fold views, export (run_infer.py)
    ensemble   model folders -> blend weights and a submission (ensemble.py)
    field/     field videos and MegaDetector files -> per-animal distances (run_field.py)
    demo/      a synthetic world and the whole pipeline on it (make demo)
    commands/  the entry programs and the `chimpact` command
"""

__version__ = "0.1.0"
