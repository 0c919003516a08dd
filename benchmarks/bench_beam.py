"""What --runner=beam costs on one machine: each stage (frames, records, the field job) on the
local path and on Beam's local runner (one worker process per core), on the same survey videos
in one run, alternating, the outputs checked equal (frames, manifests and shards byte for byte,
distances within float tolerance).

    python benchmarks/bench_beam.py            # chimpact.demo.survey's 640x360 videos, 4 per camera
    python benchmarks/bench_beam.py --quick    # 128x96, 1 video per camera, runs of any length

Beam's local runner starts its worker processes, and each imports TensorFlow (and, in the field
job, loads the model), for every run: a fixed cost that a survey of thousands of videos spreads
thin, and that Dataflow pays once per worker. The last line gives, per stage, the Beam run's
wall time over the local path's (above 1: what Beam adds on one machine).
"""

import argparse
import os
import pathlib
import shutil
import statistics
import tempfile

import pandas as pd

import timing
from chimpact import runner
from chimpact.data import extract, packing, video
from chimpact.demo import survey
from chimpact.field.jobs import run_field
from chimpact.training import model

MODEL = dict(backbone="tiny", family="cnn_lstm", volume_size=3, frames_per_side=1,
             image_size=[48, 64], lstm_units=64, dense_units=64, weights="none", step=1,
             use_boxes=False, n_folds=2, folds=[0, 1])


def contents(folder):
    """{path under `folder`: bytes} of every file in it."""
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(pathlib.Path(folder).rglob("*")) if path.is_file()}


def fresh(work, name, repeat):
    path = os.path.join(work, f"{name}-{repeat}")
    shutil.rmtree(path, ignore_errors=True)
    return path


def stages(video_dir, work, beam_args):
    """{stage: {side: run(repeat) -> output}} on the same inputs."""
    options = video.DecodeOptions(fps=1.0, size=(128, 96))
    frames_dir = os.path.join(work, "frames")
    extract.extract_frames(video_dir, frames_dir, options, progress=False)
    manifest = pd.read_csv(os.path.join(frames_dir, "manifest.csv"))
    labels_csv = os.path.join(work, "labels.csv")
    pd.DataFrame([(row.video_id, t, 2.0 + (i + t) % 9) for i, row in enumerate(
        manifest[manifest.status == "ok"].itertuples()) for t in range(row.n_frames)],
        columns=["video_id", "time", "distance"]).to_csv(labels_csv, index=False)
    model_dir = model.write_untrained_folder(os.path.join(work, "model"), MODEL)

    def frames_side(args):
        def run(repeat):
            out = fresh(work, f"frames-{'beam' if args else 'local'}", repeat)
            extract.extract_frames(video_dir, out, options, progress=False, beam_args=args)
            return contents(out)
        return run

    def records_side(args):
        def run(repeat):
            out = fresh(work, f"records-{'beam' if args else 'local'}", repeat)
            packing.create_records(frames_dir, labels_csv, out, frames_per_side=1, n_folds=2,
                                   shard_mb=1, workers=timing.cores(), progress=False,
                                   beam_args=args)
            return contents(out)
        return run

    def field_side(args):
        def run(repeat):
            out_csv = os.path.join(fresh(work, f"field-{'beam' if args else 'local'}", repeat),
                                   "seconds.csv")
            os.makedirs(os.path.dirname(out_csv))
            # The local path loads the model in this process, Beam's workers each their own.
            run_field(model_dir, video_dir, out_csv=out_csv, progress=False, beam_args=args)
            return pd.read_csv(out_csv)
        return run

    return {name: {"local": side(None), "beam": side(beam_args)}
            for name, side in (("frames", frames_side), ("records", records_side),
                               ("field", field_side))}


def check(stage, runs):
    """Every run of both sides gave the first local run's output."""
    expected = runs["local"]["outputs"][0]
    for output in runs["local"]["outputs"] + runs["beam"]["outputs"]:
        if stage == "field":
            pd.testing.assert_frame_equal(output, expected, rtol=1e-5)
        else:
            assert output == expected, f"{stage}: the outputs differ"
    return len(expected)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="128x96, 1 video per camera, runs of any length")
    parser.add_argument("--videos_per_camera", type=int, default=4)
    parser.add_argument("--size", default="640x360",
                        help="the survey videos' WIDTHxHEIGHT (frames are extracted at 128x96)")
    parser.add_argument("--cache_dir",
                        default=os.path.join(tempfile.gettempdir(), "chimpact-bench-beam"),
                        help="where the generated survey is kept between runs")
    args = parser.parse_args()
    per_camera = 1 if args.quick else args.videos_per_camera
    width, height = (int(v) for v in ("128x96" if args.quick else args.size).split("x"))
    root = os.path.join(args.cache_dir, f"survey-{width}x{height}-{per_camera}")
    survey.write_survey(root, seed=0, width=width, height=height, fps=10,
                        videos_per_deployment=per_camera, progress=False)
    video_dir = os.path.join(root, "videos")
    # The survey's folder per camera: the frames stage reads the top folder only.
    flat = os.path.join(args.cache_dir, f"flat-{width}x{height}-{per_camera}")
    os.makedirs(flat, exist_ok=True)
    for video_id in extract.video_ids(video_dir, folders=True):
        target = os.path.join(flat, video_id.replace("/", "_"))
        if not os.path.exists(target):
            shutil.copy(os.path.join(video_dir, video_id), target)
    seconds = sum(video.decode_video(os.path.join(flat, name), fps=1.0, size=(16, 16))[0].shape[0]
                  for name in extract.video_ids(flat))
    beam_args = runner.pipeline_args(extra=[f"--direct_num_workers={timing.cores()}"])
    work = tempfile.mkdtemp(prefix="bench-beam-")
    ratios = {}
    try:
        for stage, sides in stages(flat, work, beam_args).items():
            runs = timing.compare(sides, min_seconds=0 if args.quick else timing.MIN_SECONDS)
            outputs = check(stage, runs)
            print(f"{stage}: {len(extract.video_ids(flat))} videos ({seconds} s of video), "
                  f"{timing.cores()} cores, {timing.cores()} Beam workers; same output "
                  f"({outputs} {'rows' if stage == 'field' else 'files'})")
            timing.report(runs, seconds, "s of video")
            ratios[stage] = (statistics.median(runs["beam"]["wall"])
                             / statistics.median(runs["local"]["wall"]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("Beam's local runner / the local path, wall time (medians): " + "; ".join(
        f"{stage} {value:.2f}x" for stage, value in ratios.items()))


if __name__ == "__main__":
    main()
