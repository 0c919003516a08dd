"""How much an imported reference model's distances move between two ways of bringing raw video
to its 512x512 input, on the same clips: chimpact's (ffmpeg's scaler while decoding) and the
reference's (full-size frames resized with tf.image.resize, bilinear, truncated to uint8, as its
parse did: what imported model folders use, config.json frame_resize=reference).

    python import_weights.py --preset=full-a4p50-f7s1 --weights=model-best-f0-....h5 \
        --out_dir=models/full-a4p50-f7s1
    python benchmarks/compare_decoding.py --model_dir=models/full-a4p50-f7s1 \
        --video_dir=../shared/videos

Both chains decode with the model's settings (1 fps, its gamma rule) and predict the same
seconds with the same fold-averaged network; the last line gives the median and largest
|difference| in metres over every second, and the median as a share of the distances' spread.
"""

import argparse
import os

import numpy as np

from chimpact.data import extract
from chimpact.field import videos
from chimpact.predict import infer


def distances(predictor, config, path, seconds):
    """The model's distance at each of the first `seconds` seconds of the video `path`."""
    pictures, fps = videos.decode_times(config, path)
    times = videos.video_seconds(len(pictures), fps)[:seconds]
    return np.asarray(videos.predict_pictures(predictor, config, pictures, fps, times,
                                              batch_size=4)[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True, help="an imported model folder")
    parser.add_argument("--video_dir", default=os.path.join("..", "shared", "videos"))
    parser.add_argument("--seconds", type=int, default=10, help="seconds per clip, from its start")
    args = parser.parse_args()
    predictor, config = infer.load_predictor(args.model_dir)
    chains = {name: dict(config, frame_resize=name) for name in ("ffmpeg", "reference")}
    differences, predictions = [], []
    for video_id, path in extract.list_videos(args.video_dir).items():
        ffmpeg, reference = (distances(predictor, chains[name], path, args.seconds)
                             for name in ("ffmpeg", "reference"))
        difference = np.abs(ffmpeg - reference)
        print(f"{video_id}: {len(difference)} s, |ffmpeg - reference| median "
              f"{np.median(difference):.3f} m, max {difference.max():.3f} m")
        differences.append(difference)
        predictions.append(reference)
    differences, predictions = np.concatenate(differences), np.concatenate(predictions)
    spread = np.percentile(predictions, 90) - np.percentile(predictions, 10)
    print(f"{len(differences)} seconds: median |ffmpeg - reference| {np.median(differences):.3f} "
          f"m, max {differences.max():.3f} m; distances' 10-90% spread {spread:.2f} m, so the "
          f"median is {np.median(differences) / spread:.1%} of it")


if __name__ == "__main__":
    main()
