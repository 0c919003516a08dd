"""The field job (run_field.py) against its two floors, on the same survey videos in one run,
alternating: (a) decoding alone (the job's decoder, as many videos at once as in the job,
nothing predicted: the decode floor), (b) the
network alone (the job's prediction on the videos decoded beforehand), (c) the whole job
(decoding ahead on its own thread while the network predicts, rows written, resumable parts).

    python benchmarks/bench_field.py            # tiny backbone and EfficientNet-B0 at 270x480
    python benchmarks/bench_field.py --backbones=reference --videos_per_camera=1
                                                # an imported reference model at 512x512
    python benchmarks/bench_field.py --quick    # the tiny backbone, one short run each: a smoke run

Both jobs: every second of every video (`seconds`), and each MegaDetector detection at each
snapshot moment (`detections`). The survey is chimpact.demo.survey's (3 cameras, a folder each);
the models are untrained folders of 3 folds (model.write_untrained_folder; speed does not depend
on the weights): the tiny backbone on 48x64 frames (cnn_lstm, 3 frames), and EfficientNet-B0 in
the stacked family at 270x480 (5 frames on channels, zamba's depth configuration). Checks: the
job's distances are the network-alone ones. Printed per case: seconds of video per second and
videos per hour of the whole job; the last line gives (c) / max(a, b), whose limit is 1.0 (the
slower of decoding and the network), (c) / (a + b), what a sequential loop costs, and (c) over
the true floor where both sides keep every core busy: max(a, b, CPU seconds of a and b / cores).
"""

import argparse
import os
import shutil
import statistics
import tempfile

import numpy as np
import pandas as pd

import timing
from chimpact import storage
from chimpact.data import extract
from chimpact.demo import survey
from chimpact.field import distances, megadetector, videos
from chimpact.predict import infer
from chimpact.training import model

FOLDS = [0, 1, 2]
# backbone -> (survey frame size (width, height) and rate, the model folder's settings)
MODELS = {
    "tiny": ((128, 96, 10), dict(backbone="tiny", family="cnn_lstm", volume_size=3,
                                 frames_per_side=1, image_size=[48, 64], lstm_units=64,
                                 dense_units=64)),
    "efficientnet_b0": ((480, 270, 10), dict(backbone="efficientnet_b0", family="stacked",
                                             volume_size=5, frames_per_side=2,
                                             image_size=[270, 480], lstm_units=64,
                                             dense_units=64)),
    # An imported reference folder (chimpact import): fold 0 of full-a4p50-f7s1, B0 + LSTM(1024)
    # over 7 frames at 512x512, frames decoded at full size and resized as the reference did.
    "reference": ((960, 540, 10), dict(backbone="efficientnet_b0", family="cnn_lstm",
                                       volume_size=7, frames_per_side=5, image_size=[512, 512],
                                       lstm_units=1024, dense_units=300, use_boxes=False,
                                       input_scaling="unit", frame_resize="reference",
                                       folds=[0], n_folds=5)),
}
JOBS = ("seconds", "detections")
BATCH = 16


def model_dir(path, settings):
    """An untrained model folder (a box model with 3 folds unless `settings` say otherwise)
    with an oof.csv whose errors run from -2 to +3 m."""
    config = dict(dict(use_boxes=True, n_folds=len(FOLDS), folds=FOLDS), **settings,
                  weights="none", step=1)
    model.write_untrained_folder(path, config)
    errors = np.linspace(-2, 3, 51)
    pd.DataFrame({"video_id": "v.mp4", "time": range(51), "distance": 10 + errors, "pred": 10.0,
                  "fold": 0}).to_csv(os.path.join(path, "oof.csv"), index=False)
    return path


def seconds_job(predictor, config, video_dir, work):
    """The (a), (b), (c) sides of the per-second job, and the seconds of video it covers."""
    ids = list(extract.list_videos(video_dir, folders=True))
    decoded = {v: videos.decode_times(config, storage.join(video_dir, v)) for v in ids}

    def network(_):
        return np.concatenate([videos.predict_pictures(predictor, config, *decoded[v],
                                                       batch_size=BATCH)[1] for v in ids])

    def job(repeat):
        out_csv = os.path.join(work, f"seconds-{repeat}.csv")
        videos.predict_videos(predictor, config, video_dir, out_csv, batch_size=BATCH,
                              progress=False)
        return pd.read_csv(out_csv).distance.to_numpy(np.float32)

    def decode(_):
        return [len(future.result()[0]) for _, future in videos.ahead(
            ids, lambda v: videos.decode_times(config, storage.join(video_dir, v)))]

    sides = {"decode": decode, "network": network, "job": job}
    return sides, sum(len(p) / fps for p, fps in decoded.values())


def detections_job(predictor, config, offsets, video_dir, detections_json, work):
    """The (a), (b), (c) sides of the per-detection job, and the seconds of video it covers."""
    found = megadetector.read_detections(detections_json)
    listed = [(megadetector.resolve(d.file, video_dir), d) for d in found.videos]

    def decode(video_id, detected):
        return distances.decode_detected(config, storage.join(video_dir, video_id), detected)

    decoded = [decode(*item) for item in listed]

    def network(_):
        return np.concatenate([distances.predict_detected(
            predictor, config, video, detected, offsets, batch_size=BATCH)[0].distance
            for video, (_, detected) in zip(decoded, listed)])

    def job(repeat):
        out_csv = os.path.join(work, f"detections-{repeat}.csv")
        distances.predict_detections(predictor, config, video_dir, {}, out_csv, found.videos,
                                     offsets, batch_size=BATCH, progress=False)
        rows = pd.read_csv(out_csv)
        return rows.distance[rows.error.isna()].to_numpy()

    def decode_all(_):
        return [len(future.result()[0]) for _, future in videos.ahead(
            listed, lambda item: decode(*item))]

    sides = {"decode": decode_all, "network": network, "job": job}
    return sides, sum(len(video.pictures) / video.fps for video in decoded)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="the tiny backbone, 1 video per camera, runs of any length")
    parser.add_argument("--backbones", default="tiny,efficientnet_b0",
                        help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--jobs", default=",".join(JOBS),
                        help=f"comma-separated, of {', '.join(JOBS)}")
    parser.add_argument("--videos_per_camera", type=int, default=3,
                        help="survey videos at each of the 3 cameras (besides its setup clip)")
    parser.add_argument("--cache_dir",
                        default=os.path.join(tempfile.gettempdir(), "chimpact-bench-field"),
                        help="where the generated surveys are kept between runs")
    args = parser.parse_args()
    backbones = ["tiny"] if args.quick else args.backbones.split(",")
    per_camera = 1 if args.quick else args.videos_per_camera
    min_seconds = 0 if args.quick else timing.MIN_SECONDS
    results = {}
    for backbone in backbones:
        (width, height, fps), settings = MODELS[backbone]
        root = os.path.join(args.cache_dir, f"{width}x{height}-{fps}-{per_camera}")
        survey.write_survey(root, seed=0, width=width, height=height, fps=fps,
                            videos_per_deployment=per_camera, progress=False)
        work = tempfile.mkdtemp(prefix="bench-field-")
        try:
            folder = model_dir(os.path.join(work, "model"), settings)
            video_dir = os.path.join(root, "videos")
            for job in args.jobs.split(","):
                # as run_field.py loads it: each fold's own distance where intervals are given
                predictor, config = infer.load_predictor(folder, per_fold=job == "detections")
                sides, seconds = (seconds_job(predictor, config, video_dir, work)
                                  if job == "seconds" else
                                  detections_job(predictor, config, distances.error_offsets(folder),
                                                 video_dir, os.path.join(root, "detections.json"),
                                                 work))
                runs = timing.compare(sides, min_seconds=min_seconds)
                expected = runs["network"]["outputs"][0]
                for output in runs["job"]["outputs"]:
                    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-5)
                n_videos = len(runs["decode"]["outputs"][0])
                wall = {name: statistics.median(run["wall"]) for name, run in runs.items()}
                print(f"{backbone}, {job} job: {n_videos} videos, {seconds:.0f} s of video at "
                      f"{width}x{height} {fps} fps, model at {config['image_size'][0]}x"
                      f"{config['image_size'][1]}, {len(config['folds'])} folds, "
                      f"{timing.cores()} cores; same distances ({len(expected)})")
                timing.report(runs, n_videos, "video")
                print(f"  whole job: {seconds / wall['job']:.1f} s of video per s, "
                      f"{3600 * n_videos / wall['job']:.0f} videos per hour")
                # Both floors busy the CPU: the job cannot beat their CPU time shared by the cores.
                cpu = sum(statistics.median(runs[n]["cpu"]) for n in ("decode", "network"))
                results[f"{backbone} {job}"] = (
                    wall["job"] / max(wall["decode"], wall["network"]),
                    wall["job"] / (wall["decode"] + wall["network"]),
                    wall["job"] / max(wall["decode"], wall["network"], cpu / timing.cores()))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print("field job / max(decode, network), / (decode + network), / max(decode, network, their "
          "CPU time / cores), medians: " + "; ".join(
              f"{case} {to_max:.2f}x, {to_sum:.2f}x, {to_cpu:.2f}x"
              for case, (to_max, to_sum, to_cpu) in results.items()))


if __name__ == "__main__":
    main()
