"""MegaDetector files in each layout MegaDetector's own code writes, built here from the format's
documentation (megadetector-output-format.md, validate_batch_results.py, process_video.py and
video_utils.frame_results_to_video_results of agentmorris/MegaDetector): one survey written in
every layout reads into the same detections, and each malformed case is one line naming it."""

import json

import pytest

from chimpact.errors import InputError, UsageError
from chimpact.field import detections, megadetector

CATEGORIES = {"1": "animal", "2": "person", "3": "vehicle"}
# One survey: per video its frame rate, the frames MegaDetector processed (every 5th frame,
# process_video.py --frame_sample=5) and detections {frame: [(category, conf, bbox)]}.
SURVEY = {
    "cam1/a.mp4": (25.0, range(0, 100, 5), {
        0: [("1", 0.9, [0.1, 0.2, 0.3, 0.4])],
        25: [("1", 0.8, [0.5, 0.5, 0.2, 0.3]), ("1", 0.6, [0.0, 0.1, 0.2, 0.2])],
        50: [("2", 0.95, [0.3, 0.3, 0.1, 0.5]), ("1", 0.1, [0.2, 0.2, 0.1, 0.1])],
        75: [("1", 0.7, [0.6, 0.1, 0.3, 0.3])],
    }),
    "cam2/b.avi": (30.0, range(0, 60, 5), {40: [("1", 0.5, [0.2, 0.6, 0.3, 0.3])]}),
}


def _detection(category, conf, bbox, frame=None):
    found = {"category": category, "conf": conf, "bbox": bbox}
    return found if frame is None else {**found, "frame_number": frame}


def video_level(version="1.5", frames_processed=True, frame_rate=True, separator="/"):
    """process_video.py's video results: one entry per video."""
    images = []
    for video, (rate, processed, found) in SURVEY.items():
        entry = {"file": video.replace("/", separator),
                 "detections": [_detection(*d, frame=frame) for frame, ds in found.items()
                                for d in ds]}
        if frame_rate:
            entry["frame_rate"] = rate
        if frames_processed:
            entry["frames_processed"] = list(processed)
        images.append(entry)
    return {"info": {"format_version": version}, "detection_categories": dict(CATEGORIES),
            "images": images}


def frame_level(rates="custom"):
    """The frame results of process_video.py (X.frames.json) or a batch run over extracted
    frames: one entry per processed frame, named VIDEO/frameNNNNNN.jpg, the frame rate in
    info.custom_metadata (`rates` "custom"), in each entry ("entry") or nowhere (None)."""
    images = []
    for video, (rate, processed, found) in SURVEY.items():
        for frame in reversed(processed):  # in any order
            entry = {"file": f"{video}/frame{frame:06d}.jpg",
                     "detections": [_detection(*d) for d in found.get(frame, [])]}
            images.append({**entry, "frame_rate": rate} if rates == "entry" else entry)
    info = {"format_version": "1.4"}
    if rates == "custom":
        info["custom_metadata"] = {"video_frame_rate": {v: r for v, (r, _, _) in SURVEY.items()}}
    return {"info": info, "detection_categories": dict(CATEGORIES), "images": images}


def _read(tmp_path, data, **options):
    path = tmp_path / "md.json"
    path.write_text(json.dumps(data))
    return megadetector.read_detections(str(path), **options)


def _table(found):
    """{video: (frame_rate, frames_processed, [(frame, category, conf, x1, y1, x2, y2)])}."""
    return {video.file: (video.frame_rate, video.frames_processed,
                         [tuple(row) for row in video.detections.itertuples(index=False)])
            for video in found.videos}


EXPECTED = {
    "cam1/a.mp4": (25.0, tuple(range(0, 100, 5)), [
        (0, "animal", 0.9, 0.1, 0.2, 0.4, 0.6),
        (25, "animal", 0.8, 0.5, 0.5, 0.7, 0.8),
        (25, "animal", 0.6, 0.0, 0.1, 0.2, 0.3),
        (75, "animal", 0.7, 0.6, 0.1, 0.9, 0.4)]),
    "cam2/b.avi": (30.0, tuple(range(0, 60, 5)), [
        (40, "animal", 0.5, 0.2, 0.6, 0.5, 0.9)]),
}


@pytest.mark.parametrize("data", [
    video_level("1.5"), video_level("1.6"), video_level(1.4), video_level(separator="\\"),
    frame_level("custom"), frame_level("entry")],
    ids=["video-1.5", "video-1.6", "video-1.4-number", "video-backslashes", "frames-custom-rate",
         "frames-entry-rate"])
def test_every_layout_of_one_survey_reads_into_the_same_detections(tmp_path, data):
    found = _read(tmp_path, data)
    table = _table(found)
    assert list(table) == ["cam1/a.mp4", "cam2/b.avi"]
    # the corners as written: x + width rounded to DECIMALS, never 0.6000000000000001
    assert {video: table[video] for video in EXPECTED} == EXPECTED
    assert found.skipped == {"category person": 1, "conf below --min_conf=0.2": 1}
    assert found.min_conf == 0.2 and found.summaries == []


def test_frame_level_without_a_rate_leaves_it_to_the_video(tmp_path):
    found = _read(tmp_path, frame_level(rates=None))
    assert [video.frame_rate for video in found.videos] == [None, None]
    assert _table(found)["cam2/b.avi"][1:] == EXPECTED["cam2/b.avi"][1:]


def test_older_video_files_keep_what_they_say(tmp_path):
    """Format 1.4 need not list frames_processed (None: every frame), 1.3 not the frame rate."""
    no_processed = _read(tmp_path, video_level("1.4", frames_processed=False))
    assert [video.frames_processed for video in no_processed.videos] == [None, None]
    no_rate = _read(tmp_path, video_level("1.3", frames_processed=False, frame_rate=False))
    assert [video.frame_rate for video in no_rate.videos] == [None, None]


def test_summaries_of_one_detection_per_category_are_named(tmp_path):
    """frame_results_to_video_results' default: the best detection per category per video."""
    data = video_level("1.4", frames_processed=False)
    data["images"][0]["detections"] = [_detection("1", 0.9, [0.1, 0.2, 0.3, 0.4], frame=0),
                                       _detection("2", 0.95, [0.3, 0.3, 0.1, 0.5], frame=50)]
    assert _read(tmp_path, data).summaries == ["cam1/a.mp4", "cam2/b.avi"]
    # one video with two animals: every detection was kept, in the other videos too
    assert _read(tmp_path, video_level("1.4", frames_processed=False)).summaries == []
    # frames_processed: every processed frame's detections, however few
    data = video_level("1.5")
    data["images"][0]["detections"] = data["images"][0]["detections"][:1]
    assert _read(tmp_path, data).summaries == []


def test_min_conf_defaults_to_the_files_typical_threshold(tmp_path):
    data = video_level()
    data["info"]["detector_metadata"] = {"typical_detection_threshold": 0.65}
    found = _read(tmp_path, data)
    assert found.min_conf == 0.65
    assert [len(video.detections) for video in found.videos] == [3, 0]  # 0.6 and 0.5 dropped
    assert found.skipped["conf below --min_conf=0.65"] == 3
    given = _read(tmp_path, data, min_conf=0.2)
    assert given.min_conf == 0.2 and [len(v.detections) for v in given.videos] == [4, 1]


def test_failures_and_failed_frames(tmp_path):
    data = frame_level("entry")
    for entry in data["images"]:
        if entry["file"].startswith("cam2/"):
            entry.update(failure="Frame unreadable", detections=None)
        elif entry["file"].endswith("frame000025.jpg"):
            entry.update(failure="Frame unreadable", detections=None)
    found = {video.file: video for video in _read(tmp_path, data).videos}
    assert 25 not in found["cam1/a.mp4"].frames_processed
    assert list(found["cam1/a.mp4"].detections.frame_number) == [0, 75]
    assert found["cam2/b.avi"].failure == "failed on every frame (Frame unreadable)"
    video = video_level()
    video["images"][1] = {"file": "cam2/b.avi", "failure": "Failed to open video"}
    assert _read(tmp_path, video).videos[1].failure == "Failed to open video"


def _broken(change):
    data = video_level("1.6")
    change(data)
    return data


def _set(field, value, entry=0, detection=None):
    def change(data):
        target = data["images"][entry]
        if detection is not None:
            target = target["detections"][detection]
        if value is KeyError:
            del target[field]
        else:
            target[field] = value
    return change


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("info"), "no `info.format_version`"),
    (lambda d: d["info"].update(format_version="1.2"), "format_version 1.2 is older than 1.3"),
    (lambda d: d["info"].update(format_version=1.6), "format_version 1.6 must be a string"),
    (lambda d: d.pop("detection_categories"), "no `detection_categories`"),
    (lambda d: d["detection_categories"].update({"4": " "}),
     r"detection_categories\['4'\] ' ' is not a category name"),
    (_set("conf", "0.9", detection=0),
     r"images\[0\] \(cam1/a.mp4\): detections\[0\] conf '0.9' is not a number"),
    (_set("conf", float("nan"), detection=0), "conf nan is not a number"),
    (_set("conf", 1.5, detection=0), "conf 1.5 is outside 0..1"),
    (_set("frame_number", 2.5, detection=1), "frame_number 2.5 is not a whole number"),
    (_set("frame_number", "3", detection=1), "frame_number '3' is not a number"),
    (_set("frame_number", -1, detection=1), "frame_number -1 is outside 0..inf"),
    (_set("frame_number", KeyError, detection=1), "has no `frame_number`"),
    (_set("category", "9", detection=0), "category '9' is not in detection_categories"),
    (_set("bbox", [0.1, 0.2, 0.3], detection=0), r"bbox \[0.1, 0.2, 0.3\] is not"),
    (_set("bbox", [0.5, 0.5, -1, 1], detection=0), "bbox value -1 is outside 0..inf"),
    (_set("file", "frame000010.jpg"), r"images\[0\] \(frame000010.jpg\): is a picture outside "
                                      "a video's folder, so it names no video"),
    (_set("file", "cam1/frames/frame000010.jpg"), "is a picture outside a video's folder"),
    (_set("frame_rate", KeyError), "has no `frame_rate` \\(required from format 1.4"),
    (_set("frame_rate", 0), "frame_rate 0 is outside"),
    (_set("failure", "Failed to open video"), "has a failure and detections"),
    (_set("failure", 3), "failure 3 is not a message"),
    (_set("detections", None), "has no `detections` list"),
    (_set("file", None), r"images\[0\]: has no `file`"),
    (lambda d: d["images"].append(dict(d["images"][0])), r"images\[2\] \(cam1/a.mp4\): lists "
                                                         "this video a second time"),
])
def test_malformed_files_are_refused_in_one_line_naming_the_entry(tmp_path, change, message):
    with pytest.raises(InputError, match=message) as refused:
        _read(tmp_path, _broken(change))
    assert str(refused.value).startswith(f"--detections={tmp_path / 'md.json'}: ")
    assert "\n" not in str(refused.value)


def test_the_categories_asked_for_must_be_in_the_file(tmp_path):
    with pytest.raises(InputError, match="--detection_categories: bird not in the file's "
                                         "categories \\(animal, person, vehicle\\)"):
        _read(tmp_path, video_level(), categories=("animal", "bird"))


@pytest.mark.parametrize("file, video_id", [
    ("cam1/a.mp4", "cam1/a.mp4"),
    ("/survey/site/cam1/a.mp4", "cam1/a.mp4"),
    ("/survey/other/cam1/a.mp4", None),
    ("C:/survey/site/cam1/a.mp4", None),
])
def test_paths_resolve_under_the_video_folder(file, video_id):
    assert megadetector.resolve(megadetector.normalise(file), "/survey/site/") == video_id
    assert megadetector.normalise("cam1\\sub\\..\\a.mp4") == "cam1/a.mp4"


def test_megadetector_10s_video_results_without_frames_processed_look_only_where_they_found(
        tmp_path):
    """frame_results_to_video_results (MegaDetector 10.0) writes format 1.6 without
    frames_processed: every detection is read; MegaDetector is known to have looked only at the
    frames of its detections (a person and a low-confidence one count too)."""
    found = _read(tmp_path, video_level("1.6", frames_processed=False))
    assert found.unsaid == ["cam1/a.mp4", "cam2/b.avi"] and found.summaries == []
    table = _table(found)
    assert [table[video][2] for video in EXPECTED] == [rows for _, _, rows in EXPECTED.values()]
    assert [table[video][1] for video in EXPECTED] == [(0, 25, 50, 75), (40,)]
    # at 25 fps, moment 4 s had no frame looked at: not processed, never empty
    assert detections.processed_moments([0, 1, 2, 3, 4], table["cam1/a.mp4"][1], 25.0,
                                        1.0) == [0, 1, 2, 3]
    assert _read(tmp_path, video_level("1.6")).unsaid == []
    # its default, one detection per category, is still named as a summary
    data = video_level("1.6", frames_processed=False)
    data["images"][0]["detections"] = data["images"][0]["detections"][:1]
    assert _read(tmp_path, data).summaries == ["cam1/a.mp4", "cam2/b.avi"]


def test_another_machines_folder_is_mapped_by_the_path_prefix(tmp_path):
    data = frame_level("entry")
    for entry in data["images"]:
        entry["file"] = "D:\\md\\frames\\" + entry["file"].replace("/", "\\")
    assert [v.file for v in _read(tmp_path, data).videos] == [
        "D:/md/frames/cam1/a.mp4", "D:/md/frames/cam2/b.avi"]
    found = _read(tmp_path, data, prefix=megadetector.parse_prefix("D:\\md\\frames="))
    assert _table(found)["cam2/b.avi"][1:] == EXPECTED["cam2/b.avi"][1:]
    onto = megadetector.parse_prefix("D:/md/frames/=/data/survey")
    assert [v.file for v in _read(tmp_path, data, prefix=onto).videos] == [
        "/data/survey/cam1/a.mp4", "/data/survey/cam2/b.avi"]
    # whole folder names only
    assert megadetector.replace_prefix("D:/md/frames2/a.mp4", onto) == "D:/md/frames2/a.mp4"
    with pytest.raises(UsageError, match="--detections_path_prefix=D:/md: give OLD=NEW"):
        megadetector.parse_prefix("D:/md")


def test_a_relative_video_folder_matches_megadetectors_absolute_paths(tmp_path, monkeypatch):
    (tmp_path / "survey" / "videos").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "survey")
    (tmp_path / "card").mkdir()
    (tmp_path / "survey" / "videos" / "cam2").symlink_to(tmp_path / "card")  # a linked camera
    monkeypatch.chdir(tmp_path)
    file = f"{tmp_path}/survey/videos/cam1/EK000018.AVI"
    for video_dir in ("survey/videos", "./survey/videos/", "link/videos"):
        assert megadetector.resolve(file, video_dir) == "cam1/EK000018.AVI"
    assert megadetector.resolve(f"{tmp_path}/link/videos/a.mp4", "survey/videos") == "a.mp4"
    assert megadetector.resolve(f"{tmp_path}/survey/videos/cam2/b.mp4", "survey/videos") == (
        "cam2/b.mp4")
    assert megadetector.resolve(f"{tmp_path}/survey/a.mp4", "survey/videos") is None


def test_a_nearer_processed_frame_without_an_animal_leaves_the_moment_empty(tmp_path):
    table = _read(tmp_path, video_level()).videos[0].detections
    # at 25 fps: frames 0 (0 s), 25 (1 s), 75 (3 s) and, processed only, every 5th frame
    assert list(detections.snapshot_detections(table, 25.0, 1.0, range(0, 100, 5)).time) == [
        0, 1, 1, 3]
    late = table.assign(frame_number=table.frame_number + 3)  # 0.12 s after each moment
    assert list(detections.snapshot_detections(late, 25.0, 1.0, range(0, 100, 5)).time) == []
    assert list(detections.snapshot_detections(late, 25.0, 1.0).time) == [0, 1, 1, 3]
    assert detections.processed_moments([0, 1, 2, 3, 4], range(0, 60, 5), 25.0, 1.0) == [0, 1, 2]
    assert detections.processed_moments([0, 1], None, 25.0, 1.0) == [0, 1]
