"""chimpact: how far an animal is from a camera trap, from the video alone.

Data flows one way: video -> frames -> records -> pipeline -> model -> train/infer -> ensemble.
"""

__version__ = "0.1.0"
