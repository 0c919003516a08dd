"""The synthetic world (synth: videos whose distances are known, their label tables, boxes and
MegaDetector files) and the demo that runs the whole pipeline on it (demo, `python -m
chimpact.demo`)."""
