"""A synthetic camera-trap world in the challenge's layout, to run the pipeline without 1 TB of videos.

A few sites, each a fixed pinhole camera looking at a textured ground plane, a treeline and bushes.
An animal walks through at known distances: its apparent height is f * H / Z and its feet sit
f * camera_height / Z rows below the horizon, so distance is learnable from the pixels alone. Sites
and file names are drawn independently of the distances. Some videos are overexposed so that the
frames stage's automatic gamma correction triggers.

    OUT/videos/<id>.mp4        H.264, yuv420p, `fps` frames per second, 15 to 60 s
    OUT/train_labels.csv       video_id, time, distance (labels every 10 s)
    OUT/submission_format.csv  the same for the test videos, distance a placeholder 1.0
    OUT/train_metadata.csv, OUT/test_metadata.csv
                               video_id, time, x1, y1, x2, y2, probability, park, site_id
    OUT/test_labels.csv        the test videos' true distances (the challenge keeps them hidden)
    OUT/test_detections.json   MegaDetector's video output for the test videos: every animal's
                               box at every second's frame (category 1, animal)
    OUT/test_animals.csv       the truth behind it: video_id, time, detection, distance, box
    OUT/scenes.csv             video_id, animals: how many animals each video shows
    OUT/world.json             the parameters; a re-run with the same ones keeps the videos written

With --max_animals above 1, a share of the videos (--multi_fraction) shows 2..max_animals animals
walking at their own distances; the labels and the metadata box always name the first one, the
way each challenge label names one animal.

    python -m chimpact.demo.synth --out_dir=runs/demo/data --n_videos=100 --seed=0
"""

import argparse
import dataclasses
import json
import os
import string
import subprocess
import sys

import numpy as np
import pandas as pd
import tqdm

from chimpact import storage
from chimpact.data.video import ffmpeg_binary
from chimpact.errors import InputError

# The challenge's distances (metres): 0.5 m steps to 8 m, then 1 m steps, plus 13.5.
DISTANCES = tuple(sorted([0.5 * i for i in range(17)] + [float(d) for d in range(9, 26)] + [13.5]))
# Label frequency (per mille) of each distance in the real train_labels.csv, floored at 1 so every
# value occurs: the synthetic marginal matches the real one and the median baseline is comparable.
_REAL_PER_MILLE = (1, 8, 41, 13, 70, 33, 67, 40, 71, 46, 72, 42, 52, 28, 67, 26, 47,
                   67, 34, 42, 27, 23, 3, 15, 18, 10, 9, 2, 2, 8, 1, 1, 1, 1, 15)
DISTANCE_WEIGHTS = np.array(_REAL_PER_MILLE, dtype=float) / sum(_REAL_PER_MILLE)

LABEL_COLUMNS = ["video_id", "time", "distance"]
METADATA_COLUMNS = ["video_id", "time", "x1", "y1", "x2", "y2", "probability", "park", "site_id"]
PARKS = ("moyen_bafing", "tai")
# Channel ratios (low, high) of the animals' coat: dark browns and greys, darker than the ground.
_BROWNISH = ([1.0, 0.85, 0.7], [1.3, 1.05, 0.95])
LABEL_EVERY_S = 10
PLACEHOLDER_DISTANCE = 1.0
# Rendering depth for a label of 0 m (an animal touching the lens), where f * H / Z has no value.
MIN_RENDER_DEPTH_M = 0.3
TREELINE_DEPTH_M = 60.0


@dataclasses.dataclass(frozen=True)
class Site:
    """A fixed camera: its geometry and the scene in front of it."""

    site_id: str
    park: str
    camera_height_m: float
    horizon: float  # row of the horizon as a fraction of the frame height
    focal: float  # focal length as a fraction of the frame width
    sky: tuple
    ground: tuple
    foliage: tuple
    texture_seed: int


@dataclasses.dataclass(frozen=True)
class Companion:
    """Another animal of a video: its own walk through the video's keyframes."""

    key_frames: tuple
    key_depths: tuple
    key_columns: tuple
    animal_height_m: float
    animal_aspect: float
    animal_colour: tuple


@dataclasses.dataclass(frozen=True)
class VideoPlan:
    """One video: who, where, for how long, and the animal's path through keyframes at the label times."""

    video_id: str
    subset: str  # "train" or "test"
    site: Site
    duration_s: int
    label_times: tuple
    distances: tuple  # the label at each label time
    key_frames: tuple  # frame index of each keyframe (the label frames, then the last frame)
    key_depths: tuple  # depth (m) of the animal at each keyframe
    key_columns: tuple  # body centre as a fraction of the frame width at each keyframe
    animal_height_m: float
    animal_aspect: float  # body length / height
    animal_colour: tuple
    exposure: float
    overexposed: bool
    night: bool
    light_seed: int
    companions: tuple = ()  # other animals in view (Companion), drawn after the named one

    @property
    def animals(self):
        """The named animal (the plan itself: labels and boxes are its), then the companions."""
        return (self, *self.companions)


def _ids(rng, n, length, taken=()):
    """`n` distinct random lower-case ids of `length` letters, none in `taken`."""
    letters = np.array(list(string.ascii_lowercase))
    ids, seen = [], set(taken)
    while len(ids) < n:
        candidate = "".join(rng.choice(letters, length))
        if candidate not in seen:
            seen.add(candidate)
            ids.append(candidate)
    return ids


# The training world's camera geometry: (low, high) of the height (m), the horizon's row (a
# fraction of the frame height) and the focal length (a fraction of the frame width).
CAMERA_RANGES = {"camera_height_m": (0.45, 0.7), "horizon": (0.3, 0.38), "focal": (2.2, 2.6)}


def make_sites(n_sites, seed, geometry=None, stream=0):
    """`n_sites` cameras with their own colours, heights and horizons, alternating between the
    parks; `geometry` (a list of {camera_height_m, horizon, focal}, one per site) sets the
    cameras instead of CAMERA_RANGES. `stream` picks another random stream (other sites)."""
    rng = np.random.default_rng([seed, 0] if stream == 0 else [seed, 0, stream])
    sites = []
    for i, site_id in enumerate(_ids(rng, n_sites, 3)):
        green = rng.uniform(0.6, 1.0)
        drawn = {name: float(rng.uniform(*CAMERA_RANGES[name]))
                 for name in ("camera_height_m", "horizon", "focal")}
        sites.append(Site(
            site_id=site_id,
            park=PARKS[i % len(PARKS)],
            **(drawn if geometry is None else geometry[i]),
            sky=tuple(float(c) for c in rng.uniform(150, 210, 3)),
            ground=tuple(float(c) for c in (rng.uniform(140, 185), 175 * green, rng.uniform(100, 140))),
            foliage=tuple(float(c) for c in rng.uniform([40, 80, 30], [80, 130, 70])),
            texture_seed=int(rng.integers(2**31)),
        ))
    return sites


def _distance_walk(rng, n):
    """Label distances of one video: a Metropolis walk on the grid, stationary law the real one."""
    index = rng.choice(len(DISTANCES), p=DISTANCE_WEIGHTS)
    path = [index]
    for _ in range(n - 1):
        proposal = index + int(rng.integers(-3, 4))
        inside = 0 <= proposal < len(DISTANCES)
        if inside and rng.random() < DISTANCE_WEIGHTS[proposal] / DISTANCE_WEIGHTS[index]:
            index = proposal
        path.append(index)
    return [DISTANCES[i] for i in path]


ANIMAL_HEIGHT_M = (0.8, 0.95)  # a chimpanzee on all fours; a duiker is about 0.4, an elephant 3


def _companions(rng, count, key_frames, n_labels, animal_height_m):
    """`count` other animals on independent distance walks through `key_frames`."""
    companions = []
    for _ in range(count):
        depths = _distance_walk(rng, n_labels)
        companions.append(Companion(
            key_frames=tuple(key_frames),
            key_depths=tuple(depths) + (float(np.clip(depths[-1] * np.exp(rng.normal(0, 0.2)),
                                                      0.0, 30.0)),),
            key_columns=tuple(float(c) for c in rng.uniform(0.05, 0.95, len(key_frames))),
            animal_height_m=float(rng.uniform(*animal_height_m)),
            animal_aspect=float(rng.uniform(1.2, 1.6)),
            animal_colour=tuple(float(c) for c in rng.uniform(20, 60) * rng.uniform(*_BROWNISH)),
        ))
    return tuple(companions)


def plan_world(n_videos, seed, fps, n_sites=8, test_fraction=0.2, overexposed_fraction=0.15,
               night_fraction=0.15, min_duration_s=15, max_duration_s=60,
               animal_height_m=ANIMAL_HEIGHT_M, max_animals=1, multi_fraction=0.5, sites=None):
    """The plans of all videos; distances are drawn independently of the site and the id.
    `sites` (Site list) replaces the `n_sites` drawn ones.
    Animals' heights are uniform in the (low, high) range `animal_height_m`. A share
    `multi_fraction` of the videos shows 2..`max_animals` animals (from a random stream of its
    own, so that a world of one animal per video is the same with or without the option)."""
    if n_videos < 2:
        raise InputError(f"--n_videos={n_videos}: need at least 2 (one train, one test)")
    if not 0 < test_fraction < 1:
        raise InputError(f"--test_fraction={test_fraction}: must be between 0 and 1")
    sites = make_sites(n_sites, seed) if sites is None else sites
    rng = np.random.default_rng([seed, 1])
    video_ids = _ids(rng, n_videos, 4)
    n_test = min(n_videos - 1, max(1, round(n_videos * test_fraction)))
    test = set(rng.choice(n_videos, n_test, replace=False).tolist())
    crowd_rng = np.random.default_rng([seed, 3])
    plans = []
    for i, video_id in enumerate(video_ids):
        duration = int(rng.integers(min_duration_s, max_duration_s + 1))
        label_times = tuple(range(0, duration, LABEL_EVERY_S))
        distances = _distance_walk(rng, len(label_times))
        # The animal drifts on after the last label until the last frame.
        end_depth = float(np.clip(distances[-1] * np.exp(rng.normal(0, 0.2)), 0.0, 30.0))
        key_frames = [t * fps for t in label_times] + [duration * fps - 1]
        if key_frames[-1] <= key_frames[-2]:
            key_frames[-1] = key_frames[-2] + 1
        # Mostly in view at the labels, sometimes half out of the frame at an edge.
        columns = rng.uniform(-0.05, 1.05, len(key_frames))
        overexposed = bool(rng.random() < overexposed_fraction)
        plans.append(VideoPlan(
            video_id=f"{video_id}.mp4",
            subset="test" if i in test else "train",
            site=sites[int(rng.integers(len(sites)))],
            duration_s=duration,
            label_times=label_times,
            distances=tuple(distances),
            key_frames=tuple(key_frames),
            key_depths=tuple(distances) + (end_depth,),
            key_columns=tuple(float(c) for c in columns),
            animal_height_m=float(rng.uniform(*animal_height_m)),
            animal_aspect=float(rng.uniform(1.2, 1.6)),
            animal_colour=tuple(float(c) for c in rng.uniform(20, 60) * rng.uniform(*_BROWNISH)),
            exposure=float(rng.uniform(4.0, 4.6) if overexposed else rng.uniform(0.85, 1.05)),
            overexposed=overexposed,
            night=bool(not overexposed and rng.random() < night_fraction),
            light_seed=int(rng.integers(2**31)),
        ))
        if max_animals > 1 and crowd_rng.random() < multi_fraction:
            count = int(crowd_rng.integers(1, max_animals))
            plans[-1] = dataclasses.replace(plans[-1], companions=_companions(
                crowd_rng, count, key_frames, len(label_times), animal_height_m))
    return plans


@dataclasses.dataclass(frozen=True)
class Camera:
    """Pinhole projection of a site's camera onto a `width` x `height` frame (pixel centres +0.5)."""

    width: int
    height: int
    focal_px: float
    horizon_row: float
    camera_height_m: float

    @classmethod
    def of(cls, site, width, height):
        return cls(width, height, site.focal * width, site.horizon * height, site.camera_height_m)

    def ground_row(self, depth):
        """Image row where the ground at `depth` metres appears."""
        return self.horizon_row + self.focal_px * self.camera_height_m / depth

    def size_px(self, metres, depth):
        return self.focal_px * metres / depth


def animal_box(plan, camera, frame):
    """(left, top, right, bottom) pixels of the animal `plan` (a VideoPlan: its named animal, or
    a Companion) in `frame`, its depth, its facing (+1 right)."""
    key = np.asarray(plan.key_frames, dtype=float)
    depth = float(np.interp(frame, key, plan.key_depths))
    column = float(np.interp(frame, key, plan.key_columns))
    segment = min(int(np.searchsorted(key, frame, side="right")), len(key) - 1)
    facing = 1.0 if plan.key_columns[segment] >= plan.key_columns[segment - 1] else -1.0
    render_depth = max(depth, MIN_RENDER_DEPTH_M)
    bottom = camera.ground_row(render_depth)
    top = bottom - camera.size_px(plan.animal_height_m, render_depth)
    half_length = camera.size_px(plan.animal_height_m * plan.animal_aspect, render_depth) / 2
    centre = column * camera.width
    return (centre - half_length, top, centre + half_length, bottom), render_depth, facing


def _value_noise(rng, shape):
    return rng.uniform(-1.0, 1.0, shape)


def site_background(site, width, height):
    """The static scene of a site (float RGB) and its depth buffer in metres (inf for the sky)."""
    camera = Camera.of(site, width, height)
    rng = np.random.default_rng(site.texture_seed)
    rows = np.arange(height, dtype=float)[:, None] + 0.5
    cols = np.arange(width, dtype=float)[None, :] + 0.5
    image = np.empty((height, width, 3))
    depth = np.full((height, width), np.inf)

    sky_shade = 1.0 - 0.25 * (rows / camera.horizon_row).clip(0, 1)
    image[:] = (np.array(site.sky) * sky_shade[..., None])

    below = np.broadcast_to(rows > camera.horizon_row, (height, width))
    ground_depth = camera.focal_px * camera.camera_height_m / np.maximum(rows - camera.horizon_row, 1e-6)
    ground_depth = np.broadcast_to(np.minimum(ground_depth, 1e4), (height, width))
    lateral = (cols - width / 2) * ground_depth / camera.focal_px
    # Texture fixed on the ground (0.4 m cells and 3 m patches), so it shrinks with distance like
    # the animal does; it fades towards the horizon where the cells are smaller than a pixel.
    fine, coarse = _value_noise(rng, (64, 64)), _value_noise(rng, (16, 16))
    fine_cell = fine[(ground_depth / 0.4).astype(int) % 64, (lateral / 0.4).astype(int) % 64]
    coarse_cell = coarse[(ground_depth / 3.0).astype(int) % 16, (lateral / 3.0).astype(int) % 16]
    fade = np.exp(-ground_depth / 12.0)
    shade = 1.0 + 0.06 * fine_cell * fade + 0.05 * coarse_cell
    haze = (1 - np.exp(-ground_depth / 40.0))[..., None]
    ground = (np.array(site.ground) * shade[..., None]) * (1 - haze) + np.array(site.sky) * 0.8 * haze
    image[below] = ground[below]
    depth[below] = ground_depth[below]

    # Treeline: a ragged band of foliage standing on the far ground.
    treeline_base = camera.ground_row(TREELINE_DEPTH_M)
    crown = np.convolve(rng.uniform(0, 1, width + 8), np.ones(9) / 9, mode="valid")[:width]
    treeline_top = treeline_base - camera.size_px(3.0 + 5.0 * crown, TREELINE_DEPTH_M)
    trees = (rows >= treeline_top[None, :]) & (rows < treeline_base)
    leaves = 1 + 0.15 * _value_noise(rng, (height, width))[..., None]
    image[trees] = (np.array(site.foliage) * 0.8 * leaves)[trees]
    depth[trees] = TREELINE_DEPTH_M

    # Bushes and trunks at fixed ground positions, mostly towards the sides, far to near so
    # nearer ones cover farther ones.
    n_plants = int(rng.integers(2, 6))
    plant_depths = np.sort(rng.uniform(6.0, 40.0, n_plants))[::-1]
    for plant_depth in plant_depths:
        side = rng.choice([-1, 1]) * rng.uniform(0.25, 0.75)
        lateral_m = side * width / 2 / camera.focal_px * plant_depth
        trunk = rng.random() < 0.25
        plant_height = rng.uniform(3.0, 8.0) if trunk else rng.uniform(0.4, 1.2)
        plant_width = rng.uniform(0.15, 0.35) if trunk else rng.uniform(0.6, 1.6)
        centre = width / 2 + camera.focal_px * lateral_m / plant_depth
        base = camera.ground_row(plant_depth)
        half_w = camera.size_px(plant_width, plant_depth) / 2
        tall = camera.size_px(plant_height, plant_depth)
        if trunk:
            mask = (np.abs(cols - centre) <= max(half_w, 0.5)) & (rows <= base) & (rows >= base - tall)
            colour = np.array(site.foliage) * 0.6 + 25
        else:
            across = (cols - centre) / max(half_w, 0.5)
            up = (rows - base + tall / 2) / max(tall / 2, 0.5)
            mask = across ** 2 + up ** 2 <= 1
            colour = np.array(site.foliage) * rng.uniform(0.8, 1.2)
        mask = mask & (depth > plant_depth)
        image[mask] = colour * (1 + 0.2 * _value_noise(rng, (height, width))[mask][:, None])
        depth[mask] = plant_depth
    return image, depth


def _animal_layer(box, facing, frame, rows, cols):
    """The animal's silhouette mask and shading in the region `rows` x `cols` of its box."""
    left, top, right, bottom = box
    a = (cols[None, :] + 0.5 - left) / (right - left)
    if facing < 0:
        a = 1.0 - a
    b = (rows[:, None] + 0.5 - top) / (bottom - top)
    body = ((a - 0.48) / 0.36) ** 2 + ((b - 0.38) / 0.2) ** 2 <= 1
    head = ((a - 0.86) / 0.12) ** 2 + ((b - 0.17) / 0.17) ** 2 <= 1  # its top is the box top
    swing = 0.04 * np.sin(2 * np.pi * frame / 6.0)
    legs = np.zeros_like(body)
    for leg_a, phase in ((0.24, 1), (0.34, -1), (0.62, -1), (0.72, 1)):
        legs |= (np.abs(a - leg_a - phase * swing * (b - 0.5)) <= 0.035) & (b >= 0.5) & (b <= 1.0)
    mask = body | head | legs
    shade = np.broadcast_to(1.15 - 0.45 * b, mask.shape)
    return mask, shade


def _lighting(plan, n_frames, fps, rng):
    """Per-frame gain (a slow swing and passing clouds around the exposure) and a white-balance tint."""
    t = np.arange(n_frames) / fps
    drift = np.convolve(rng.normal(0, 0.02, n_frames + 30), np.ones(31) / 31, mode="valid")
    clouds = drift[:n_frames].cumsum()
    swing = 0.06 * np.sin(2 * np.pi * t / rng.uniform(8, 30) + rng.uniform(0, 2 * np.pi))
    gain = plan.exposure * (1 + swing + clouds - clouds.mean())
    return gain.astype(np.float32), rng.uniform(0.92, 1.08, 3).astype(np.float32)


def render_frames(plan, width, height, fps, background=None, chunk=32):
    """Yields the frames of a planned video as uint8 [<=chunk, height, width, 3] arrays, in order."""
    camera = Camera.of(plan.site, width, height)
    scene, depth = background if background is not None else site_background(plan.site, width, height)
    n_frames = plan.duration_s * fps
    rng = np.random.default_rng(plan.light_seed)
    gain, tint = _lighting(plan, n_frames, fps, rng)
    # Sensor noise from a small bank of fields drawn per frame: drawing fresh noise for every
    # frame costs more than all the rest of the rendering.
    noise_bank = 2.5 * rng.standard_normal((16, height, width, 1), dtype=np.float32)
    noise_pick = rng.integers(len(noise_bank), size=n_frames)
    rows_all, cols_all = np.arange(height), np.arange(width)
    buffer = np.empty((chunk, height, width, 3), dtype=np.float32)
    for start in range(0, n_frames, chunk):
        frames = buffer[:min(chunk, n_frames - start)]
        frames[:] = scene
        for i, k in enumerate(range(start, start + len(frames))):
            placed = [(animal, *animal_box(animal, camera, k)) for animal in plan.animals]
            # Farther animals first, so that nearer ones cover them.
            for animal, box, render_depth, facing in sorted(placed, key=lambda a: -a[2]):
                r0, r1 = max(int(np.floor(box[1])), 0), min(int(np.ceil(box[3])), height)
                c0, c1 = max(int(np.floor(box[0])), 0), min(int(np.ceil(box[2])), width)
                if r1 > r0 and c1 > c0:
                    mask, shade = _animal_layer(box, facing, k, rows_all[r0:r1], cols_all[c0:c1])
                    mask &= depth[r0:r1, c0:c1] > render_depth
                    colour = np.array(animal.animal_colour, dtype=np.float32)
                    frames[i, r0:r1, c0:c1][mask] = shade[mask][:, None] * colour
        frames *= gain[start:start + len(frames), None, None, None] * tint
        if plan.night:
            frames[:] = frames.mean(axis=3, keepdims=True) * 0.8
        frames += noise_bank[noise_pick[start:start + len(frames)]]
        yield np.clip(frames, 0, 255, out=frames).astype(np.uint8)


def render_video(plan, width, height, fps, background=None):
    """All frames of a planned video as one uint8 array [n, height, width, 3]."""
    return np.concatenate(list(render_frames(plan, width, height, fps, background)))


def encode_mp4(chunks, width, height, fps, path):
    """Writes uint8 RGB frame chunks as H.264 yuv420p MP4; identical frames give identical bytes.

    Frames are piped while they are rendered, so ffmpeg encodes on one core as numpy draws on another.
    """
    with storage.local_dir() as tmp:
        local, log = os.path.join(tmp, "video.mp4"), os.path.join(tmp, "ffmpeg.log")
        command = [
            ffmpeg_binary(), "-nostdin", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
            "-threads", "1", "-x264-params", "threads=1:lookahead_threads=1",
            "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1", local,
        ]
        with open(log, "wb") as stderr:
            process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=stderr)
            try:
                for frames in chunks:
                    process.stdin.write(frames.tobytes())
            except BrokenPipeError:
                pass
            finally:
                process.stdin.close()
                returncode = process.wait()
        if returncode != 0:
            with open(log, "rb") as f:
                message = f.read().decode(errors="replace").strip()
            raise RuntimeError(f"ffmpeg failed writing {path}: {message}")
        with open(local, "rb") as f:
            storage.atomic_write(path, f.read())


def _metadata_row(plan, camera, time_s, fps, rng):
    """The named animal's detector-style box at a label time: normalised, clipped, NaN when
    mostly unseen."""
    (x1, y1, x2, y2), visible = visible_box(plan, camera, time_s * fps)
    (_, top, _, bottom), _, _ = animal_box(plan, camera, time_s * fps)
    row = {"video_id": plan.video_id, "time": time_s, "park": plan.site.park, "site_id": plan.site.site_id}
    if visible < 0.3 or rng.random() < 0.05:
        row.update(x1=np.nan, y1=np.nan, x2=np.nan, y2=np.nan, probability=np.nan)
    else:
        probability = visible * min(1.0, (bottom - top) / 20.0) * rng.uniform(0.7, 1.0)
        row.update(x1=x1, y1=y1, x2=x2, y2=y2, probability=max(probability, 0.01))
    return row


def visible_box(animal, camera, frame):
    """The normalised, clipped box of an animal in `frame` and the share of it inside the frame."""
    (left, top, right, bottom), _, _ = animal_box(animal, camera, frame)
    x1, x2 = np.clip([left / camera.width, right / camera.width], 0, 1)
    y1, y2 = np.clip([top / camera.height, bottom / camera.height], 0, 1)
    full_area = (right - left) * (bottom - top) / (camera.width * camera.height)
    return (x1, y1, x2, y2), (x2 - x1) * (y2 - y1) / max(full_area, 1e-9)


def test_detections(plans, width, height, fps):
    """(MegaDetector video output dict, truth table): at each whole second of each test video,
    every animal at least 30% in view as a detection (category 1, animal), in animal order; the
    truth gives each detection's distance."""
    images, truth = [], []
    for plan in plans:
        if plan.subset != "test":
            continue
        camera = Camera.of(plan.site, width, height)
        found = []
        for second in range(plan.duration_s):
            frame, j = second * fps, 0
            for animal in plan.animals:
                (x1, y1, x2, y2), visible = visible_box(animal, camera, frame)
                if visible < 0.3:
                    continue
                found.append({"category": "1", "conf": round(0.5 + 0.49 * visible, 3),
                              "frame_number": frame, "bbox": [round(float(v), 6) for v in
                                                              (x1, y1, x2 - x1, y2 - y1)]})
                depth = float(np.interp(frame, animal.key_frames, animal.key_depths))
                truth.append({"video_id": plan.video_id, "time": second, "detection": j,
                              "distance": depth, "x1": x1, "y1": y1, "x2": x2, "y2": y2})
                j += 1
        images.append({"file": plan.video_id, "frame_rate": float(fps),
                       "frames_processed": list(range(0, plan.duration_s * fps, fps)),
                       "detections": found})
    output = {"info": {"format_version": "1.4", "detector": "chimpact.demo.synth (true boxes)"},
              "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
              "images": images}
    columns = ["video_id", "time", "detection", "distance", "x1", "y1", "x2", "y2"]
    return output, pd.DataFrame(truth, columns=columns)


def world_tables(plans, width, height, fps, seed):
    """The challenge tables (and the hidden test labels) of a planned world, as DataFrames."""
    rng = np.random.default_rng([seed, 2])
    labels, metadata = {"train": [], "test": []}, {"train": [], "test": []}
    for plan in plans:
        camera = Camera.of(plan.site, width, height)
        for time_s, distance in zip(plan.label_times, plan.distances):
            labels[plan.subset].append({"video_id": plan.video_id, "time": time_s, "distance": float(distance)})
            metadata[plan.subset].append(_metadata_row(plan, camera, time_s, fps, rng))

    def table(rows, columns):
        frame = pd.DataFrame(rows, columns=columns).sort_values(["video_id", "time"], ignore_index=True)
        return frame.round({c: 6 for c in ("x1", "y1", "x2", "y2", "probability")})

    test_labels = table(labels["test"], LABEL_COLUMNS)
    return {
        "train_labels.csv": table(labels["train"], LABEL_COLUMNS),
        "submission_format.csv": test_labels.assign(distance=PLACEHOLDER_DISTANCE),
        "train_metadata.csv": table(metadata["train"], METADATA_COLUMNS),
        "test_metadata.csv": table(metadata["test"], METADATA_COLUMNS),
        "test_labels.csv": test_labels,
        "scenes.csv": pd.DataFrame({"video_id": [p.video_id for p in plans],
                                    "animals": [len(p.animals) for p in plans]}),
    }


def check_frame_size(width, height):
    """Refuses frame sizes the videos' yuv420p encoding cannot hold."""
    if width % 2 or height % 2 or width < 32 or height < 32:
        raise InputError(f"--width={width} --height={height}: need even sizes of at least 32 (yuv420p)")


def write_world(out_dir, n_videos=100, seed=0, width=128, height=96, fps=10, n_sites=8, test_fraction=0.2,
                overexposed_fraction=0.15, min_duration_s=15, max_duration_s=60,
                animal_height_m=ANIMAL_HEIGHT_M, max_animals=1, multi_fraction=0.5, progress=True):
    """Generates the world into `out_dir` (local or gs://); videos already there are kept."""
    check_frame_size(width, height)
    if not 1 <= min_duration_s <= max_duration_s:
        raise InputError(f"--min_duration_s={min_duration_s} --max_duration_s={max_duration_s}: "
                         "need 1 <= min <= max")
    low, high = (float(v) for v in animal_height_m)
    if not 0 < low <= high:
        raise InputError(f"--animal_height_m={low},{high}: need 0 < low <= high (metres)")
    params = dict(n_videos=n_videos, seed=seed, width=width, height=height, fps=fps, n_sites=n_sites,
                  test_fraction=test_fraction, overexposed_fraction=overexposed_fraction,
                  min_duration_s=min_duration_s, max_duration_s=max_duration_s)
    if max_animals < 1 or not 0 <= multi_fraction <= 1:
        raise InputError(f"--max_animals={max_animals} --multi_fraction={multi_fraction}: need "
                         ">= 1 and a share in 0..1")
    # Worlds written before these options keep their world.json.
    if (low, high) != ANIMAL_HEIGHT_M:
        params["animal_height_m"] = [low, high]
    if max_animals > 1:
        params.update(max_animals=max_animals, multi_fraction=multi_fraction)
    params_path = storage.join(out_dir, "world.json")
    if storage.exists(params_path):
        existing = json.loads(storage.read_text(params_path))
        if existing != params:
            raise InputError(f"{params_path}: {out_dir} holds another world ({existing}); "
                             "use a new --out_dir")
    video_dir = storage.join(out_dir, "videos")
    storage.makedirs(video_dir)
    storage.atomic_write(params_path, json.dumps(params, indent=1, sort_keys=True))

    plans = plan_world(n_videos, seed, fps, n_sites=n_sites, test_fraction=test_fraction,
                       overexposed_fraction=overexposed_fraction, min_duration_s=min_duration_s,
                       max_duration_s=max_duration_s, animal_height_m=(low, high),
                       max_animals=max_animals, multi_fraction=multi_fraction)
    backgrounds = {}
    todo = [p for p in plans if not storage.exists(storage.join(video_dir, p.video_id))]
    for plan in tqdm.tqdm(todo, desc="synthetic videos", unit="video", disable=not progress):
        site_id = plan.site.site_id
        if site_id not in backgrounds:
            backgrounds[site_id] = site_background(plan.site, width, height)
        chunks = render_frames(plan, width, height, fps, background=backgrounds[site_id])
        encode_mp4(chunks, width, height, fps, storage.join(video_dir, plan.video_id))
    for name, table in world_tables(plans, width, height, fps, seed).items():
        storage.write_csv(table, storage.join(out_dir, name))
    output, truth = test_detections(plans, width, height, fps)
    storage.atomic_write(storage.join(out_dir, "test_detections.json"), json.dumps(output) + "\n")
    storage.write_csv(truth.round(6), storage.join(out_dir, "test_animals.csv"))
    return plans


def video_arguments(prog, doc, what):
    """The command-line parser of a generator of videos, with the arguments every generator takes
    (--out_dir, --seed and the videos' size and frame rate)."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0])
    parser.add_argument("--out_dir", required=True, help=f"Folder (local or gs://) that receives {what}.")
    parser.add_argument("--seed", type=int, default=0, help="Same seed and flags give the same bytes.")
    parser.add_argument("--width", type=int, default=128, help="Frame width in pixels (even).")
    parser.add_argument("--height", type=int, default=96, help="Frame height in pixels (even).")
    parser.add_argument("--fps", type=int, default=10, help="Frames per second of the videos.")
    return parser


def main(argv=None):
    parser = video_arguments("python -m chimpact.demo.synth", __doc__, "the world")
    parser.add_argument("--n_videos", type=int, default=100, help="Number of videos, train and test together.")
    parser.add_argument("--n_sites", type=int, default=8, help="Number of camera sites (split between 2 parks).")
    parser.add_argument("--test_fraction", type=float, default=0.2, help="Share of videos in the test table.")
    parser.add_argument("--overexposed_fraction", type=float, default=0.15,
                        help="Share of videos so bright that gamma correction triggers.")
    parser.add_argument("--min_duration_s", type=int, default=15, help="Shortest video in seconds.")
    parser.add_argument("--max_duration_s", type=int, default=60, help="Longest video in seconds.")
    parser.add_argument("--animal_height_m", type=lambda text: tuple(float(v) for v in text.split(",")),
                        default=ANIMAL_HEIGHT_M, help="LOW,HIGH range of the animals' heights in metres "
                        "(0.8,0.95: chimpanzees; 0.3,0.5 duikers; 2.5,3.2 elephants).")
    parser.add_argument("--max_animals", type=int, default=1,
                        help="Most animals in one video; above 1, --multi_fraction of the videos "
                        "show 2..max_animals at their own distances (labels name the first).")
    parser.add_argument("--multi_fraction", type=float, default=0.5,
                        help="Share of videos with more than one animal (with --max_animals > 1).")
    args = parser.parse_args(argv)
    try:
        plans = write_world(**vars(args))
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    n_train = sum(p.subset == "train" for p in plans)
    print(f"wrote {len(plans)} videos ({n_train} train, {len(plans) - n_train} test) to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
