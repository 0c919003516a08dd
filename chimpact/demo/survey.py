"""A field survey at cameras the model never saw, for run_field.py: each deployment's camera has
its own height, tilt and lens, outside the training world's ranges (synth.CAMERA_RANGES), so a
model trained on the world is biased there; each deployment also has a setup clip of an animal
held at marked distances, the reference detections that calibrate it.

    OUT/videos/<deployment>/<id>.mp4   survey videos, a folder per deployment
    OUT/videos/<deployment>/setup.mp4  the setup clip: an animal at marked distances in turn
    OUT/videos.csv                     video_id, deployment_id, timestamp (--videos_csv)
    OUT/deployments.csv                Camtrap DP deployment fields (--deployments_csv)
    OUT/calibration.csv                the setup clips' reference detections (--calibration_csv)
    OUT/detections.json                MegaDetector's video-level output (format 1.5) of the
                                       survey videos (the setup clips are not in it)
    OUT/detections.frames.json         the same in the frame-level layout (X.frames.json)
    OUT/animals.csv                    the truth: video_id, time, detection, distance, box

    python -m chimpact.demo.survey --out_dir=runs/demo/survey --width=128 --height=96 --fps=10
"""

import dataclasses
import json
import math
import sys

import numpy as np
import pandas as pd
import tqdm

from chimpact import storage
from chimpact.demo import synth
from chimpact.errors import InputError

# Each deployment's camera against the training world's (height 0.45-0.7 m, horizon at 0.30-0.38
# of the frame, focal 2.2-2.6 widths: synth.CAMERA_RANGES): a wide lens, a long lens, and a higher
# camera with a wider lens tilted further down.
CAMERAS = (
    {"camera_height_m": 0.6, "horizon": 0.32, "focal": 1.4},
    {"camera_height_m": 0.55, "horizon": 0.34, "focal": 4.0},
    {"camera_height_m": 0.9, "horizon": 0.28, "focal": 1.8},
)
N_MARKS = 5  # reference detections per deployment: marks from the nearest in full view to FAR_MARK_M
FAR_MARK_M = 15.0  # Howe et al.'s right truncation for duikers
HOLD_S = 3  # seconds the setup animal stands at each mark; its reference is the middle one
SURVEY_START = pd.Timestamp("2026-03-02T07:00:00Z")
SETUP_ID = "setup.mp4"


def tilt_degrees(site, width, height):
    """The camera's tilt (Camtrap DP cameraTilt: degrees, negative facing down) that puts the
    horizon at its row."""
    camera = synth.Camera.of(site, width, height)
    return round(-math.degrees(math.atan((height / 2 - camera.horizon_row) / camera.focal_px)), 2)


def marks(plan, width, height):
    """The setup clip's N_MARKS distances (metres, 0.5 m steps), spaced evenly in log from the
    nearest at which `plan`'s animal is whole in the frame (off centre by 0.1) to FAR_MARK_M, as a
    field team marks the zone a camera sees."""
    camera = synth.Camera.of(plan.site, width, height)
    near = 0.5
    while (camera.ground_row(near) > height - 1
           or camera.ground_row(near) - camera.size_px(plan.animal_height_m, near) < 1
           or camera.size_px(plan.animal_height_m * plan.animal_aspect, near) > 0.8 * width):
        near += 0.5
    return tuple(float(np.round(2 * d) / 2) for d in np.geomspace(near, FAR_MARK_M, N_MARKS))


def plan_survey(seed, width, height, fps, videos_per_deployment=4, max_animals=2,
                multi_fraction=0.4, max_duration_s=30):
    """(survey plans, setup plans): `videos_per_deployment` videos at each CAMERAS deployment
    (ids `<deployment>/<id>.mp4`), and one setup clip per deployment (its animal HOLD_S seconds
    at each of its marks)."""
    sites = synth.make_sites(len(CAMERAS), seed, geometry=CAMERAS, stream=1)
    plans = synth.plan_world(len(sites) * videos_per_deployment + 1, seed, fps,
                             max_duration_s=max_duration_s, max_animals=max_animals,
                             multi_fraction=multi_fraction, sites=sites)
    survey = [dataclasses.replace(plan, site=sites[i % len(sites)], subset="test",
                                  video_id=f"{sites[i % len(sites)].site_id}/{plan.video_id}")
              for i, plan in enumerate(plans[:-1])]
    hold = [(k * HOLD_S * fps, (k * HOLD_S + HOLD_S - 1) * fps) for k in range(N_MARKS)]
    setups = []
    for site in sites:
        setup = dataclasses.replace(plans[-1], site=site)
        setups.append(dataclasses.replace(
            setup, subset="test", video_id=f"{site.site_id}/{SETUP_ID}",
            duration_s=N_MARKS * HOLD_S, label_times=(), distances=(), companions=(),
            key_frames=tuple(frame for pair in hold for frame in pair),
            key_depths=tuple(d for d in marks(setup, width, height) for _ in range(2)),
            key_columns=tuple(0.5 + 0.1 * (-1) ** k for k in range(N_MARKS) for _ in range(2)),
            exposure=1.0, overexposed=False, night=False))
    return survey, setups


def references(setups, width, height, fps):
    """The calibration table: each setup clip's animal at the middle second of each mark, its
    box and the mark's distance."""
    rows = []
    for plan in setups:
        camera = synth.Camera.of(plan.site, width, height)
        for k in range(N_MARKS):
            frame = (k * HOLD_S + HOLD_S // 2) * fps
            (x1, y1, x2, y2), _ = synth.visible_box(plan, camera, frame)
            rows.append({"deployment_id": plan.site.site_id, "video_id": plan.video_id,
                         "time": frame // fps, "x1": x1, "y1": y1, "x2": x2, "y2": y2,
                         "distance": plan.key_depths[2 * k]})
    return pd.DataFrame(rows).round(6)


def frame_level(output):
    """MegaDetector's video-level `output` in the frame-level layout: one entry per processed
    frame named VIDEO/frameNNNNNN.jpg, the frame rates in info.custom_metadata."""
    images = []
    for video in output["images"]:
        found = {}
        for detection in video["detections"]:
            found.setdefault(detection["frame_number"], []).append(
                {k: v for k, v in detection.items() if k != "frame_number"})
        images += [{"file": f"{video['file']}/frame{frame:06d}.jpg",
                    "detections": found.get(frame, [])} for frame in video["frames_processed"]]
    rates = {video["file"]: video["frame_rate"] for video in output["images"]}
    info = {**output["info"], "custom_metadata": {"video_frame_rate": rates}}
    return {**output, "info": info, "images": images}


def tables(survey, setups, width, height):
    """(videos table, deployments table): every video's deployment and start (one video an hour
    from SURVEY_START, the setup clip first), each deployment's place, camera and active days."""
    videos, deployments = [], []
    for i, site in enumerate(plan.site for plan in setups):
        mine = [plan for plan in setups + survey if plan.site.site_id == site.site_id]
        start = SURVEY_START + pd.Timedelta(days=i)
        for hour, plan in enumerate(mine):
            videos.append({"video_id": plan.video_id, "deployment_id": site.site_id,
                           "timestamp": (start + pd.Timedelta(hours=hour)).isoformat()})
        deployments.append({
            "deploymentID": site.site_id, "latitude": round(5.83 + 0.01 * i, 5),
            "longitude": round(-7.35 + 0.01 * i, 5), "deploymentStart": start.isoformat(),
            "deploymentEnd": (start + pd.Timedelta(days=30)).isoformat(),
            "cameraHeight": site.camera_height_m, "cameraTilt": tilt_degrees(site, width, height),
            "locationName": f"{site.park} {site.site_id}"})
    return pd.DataFrame(videos), pd.DataFrame(deployments)


def write_survey(out_dir, seed=0, width=128, height=96, fps=10, videos_per_deployment=4,
                 progress=True):
    """Writes the survey into `out_dir` (local or gs://); videos already there are kept."""
    synth.check_frame_size(width, height)
    if videos_per_deployment < 1:
        raise InputError(f"--videos_per_deployment={videos_per_deployment}: need at least 1")
    params = dict(seed=seed, width=width, height=height, fps=fps,
                  videos_per_deployment=videos_per_deployment)
    params_path = storage.join(out_dir, "survey.json")
    if storage.exists(params_path) and json.loads(storage.read_text(params_path)) != params:
        raise InputError(f"{params_path}: {out_dir} holds another survey; use a new --out_dir")
    survey, setups = plan_survey(seed, width, height, fps, videos_per_deployment)
    video_dir = storage.join(out_dir, "videos")
    for site in {plan.site.site_id for plan in setups}:
        storage.makedirs(storage.join(video_dir, site))
    storage.atomic_write(params_path, json.dumps(params, indent=1, sort_keys=True))
    backgrounds = {}
    todo = [p for p in setups + survey if not storage.exists(storage.join(video_dir, p.video_id))]
    for plan in tqdm.tqdm(todo, desc="survey videos", unit="video", disable=not progress):
        site = plan.site
        if site.site_id not in backgrounds:
            backgrounds[site.site_id] = synth.site_background(site, width, height)
        synth.encode_mp4(synth.render_frames(plan, width, height, fps, backgrounds[site.site_id]),
                         width, height, fps, storage.join(video_dir, plan.video_id))
    output, truth = synth.test_detections(survey, width, height, fps)
    output["info"]["format_version"] = "1.5"
    for name, data in (("detections.json", output),
                       ("detections.frames.json", frame_level(output))):
        storage.atomic_write(storage.join(out_dir, name), json.dumps(data) + "\n")
    video_table, deployment_table = tables(survey, setups, width, height)
    storage.write_csv(video_table, storage.join(out_dir, "videos.csv"))
    storage.write_csv(deployment_table, storage.join(out_dir, "deployments.csv"))
    storage.write_csv(references(setups, width, height, fps),
                      storage.join(out_dir, "calibration.csv"))
    storage.write_csv(truth.round(6), storage.join(out_dir, "animals.csv"))
    return survey, setups


def main(argv=None):
    parser = synth.video_arguments("python -m chimpact.demo.survey", __doc__, "the survey")
    parser.add_argument("--videos_per_deployment", type=int, default=4,
                        help="Survey videos at each of the deployments (besides its setup clip).")
    args = parser.parse_args(argv)
    try:
        survey, setups = write_survey(**vars(args))
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(survey)} survey videos and {len(setups)} setup clips at "
          f"{len(setups)} deployments to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
