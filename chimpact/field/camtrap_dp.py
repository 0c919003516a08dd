"""A Camtrap DP 1.0 package (TDWG; read by GBIF, Agouti, TRAPPER and R's camtrapdp) of the
per-animal distances: deployments.csv, media.csv (one row per video), observations.csv (one
event-level observation per detection and snapshot moment, its distance as
individualPositionRadius and, with the camera's horizontal field of view, its bearing as
individualPositionAngle) and datapackage.json, written last.
"""

import datetime
import hashlib
import json
import math
import mimetypes
import posixpath

import numpy as np
import pandas as pd

import chimpact
from chimpact import storage
from chimpact.field.megadetector import DECIMALS

VERSION = "1.0"
SCHEMAS = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}"
PROFILE = f"{SCHEMAS}/camtrap-dp-profile.json"
# Each table's fields, in the order of Camtrap DP 1.0's table schemas: every one is written
# (empty where chimpact knows nothing), as the standard's validators match headers to them.
DEPLOYMENT_FIELDS = [
    "deploymentID", "locationID", "locationName", "latitude", "longitude",
    "coordinateUncertainty", "deploymentStart", "deploymentEnd", "setupBy", "cameraID",
    "cameraModel", "cameraDelay", "cameraHeight", "cameraDepth", "cameraTilt", "cameraHeading",
    "detectionDistance", "timestampIssues", "baitUse", "featureType", "habitat",
    "deploymentGroups", "deploymentTags", "deploymentComments"]
MEDIA_FIELDS = ["mediaID", "deploymentID", "captureMethod", "timestamp", "filePath",
                "filePublic", "fileName", "fileMediatype", "exifData", "favorite",
                "mediaComments"]
OBSERVATION_FIELDS = [
    "observationID", "deploymentID", "mediaID", "eventID", "eventStart", "eventEnd",
    "observationLevel", "observationType", "cameraSetupType", "scientificName", "count",
    "lifeStage", "sex", "behavior", "individualID", "individualPositionRadius",
    "individualPositionAngle", "individualSpeed", "bboxX", "bboxY", "bboxWidth", "bboxHeight",
    "classificationMethod", "classifiedBy", "classificationTimestamp",
    "classificationProbability", "observationTags", "observationComments"]
_INTEGERS = ("coordinateUncertainty", "cameraDelay", "cameraTilt", "cameraHeading")
# MegaDetector's categories as Camtrap DP observation types.
OBSERVATION_TYPES = {"animal": "animal", "person": "human", "vehicle": "vehicle"}


def _time(timestamp):
    """A UTC timestamp as Camtrap DP writes it (%Y-%m-%dT%H:%M:%S%z, UTC as Z)."""
    return pd.Timestamp(timestamp).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def media_id(video_id):
    """A video's mediaID: stable across runs, free of path characters."""
    return hashlib.sha1(video_id.encode()).hexdigest()[:16]


def position_angle(x1, x2, hfov):
    """Degrees from the camera's axis to the box centre (negative left) for a pinhole camera of
    horizontal field of view `hfov` degrees; NaN without one."""
    if hfov is None:
        return np.full(np.shape(x1), np.nan)
    centre = (np.asarray(x1) + np.asarray(x2)) / 2 - 0.5
    return np.degrees(np.arctan(2 * centre * math.tan(math.radians(hfov) / 2)))


def _media(rows, starts):
    videos = rows.drop_duplicates("video_id")
    videos = videos[videos.video_id.isin(starts)]
    return pd.DataFrame(columns=MEDIA_FIELDS, data={
        "mediaID": videos.video_id.map(media_id), "deploymentID": videos.deployment_id,
        "captureMethod": "activityDetection",
        "timestamp": [_time(starts[v]) for v in videos.video_id],
        "filePath": videos.video_id, "filePublic": "false",
        "fileName": videos.video_id.map(posixpath.basename),
        "fileMediatype": [mimetypes.guess_type(v)[0] or f"video/{v.rsplit('.', 1)[-1].lower()}"
                          for v in videos.video_id]})


def _observations(rows, starts, hfov, model_dir):
    found = rows[rows.distance.notna() & rows.video_id.isin(starts)]
    at = [_time(pd.Timestamp(starts[v]) + pd.Timedelta(seconds=t))
          for v, t in zip(found.video_id, found.time)]
    media = found.video_id.map(media_id)
    event = media + "-" + found.time.map(lambda t: f"{t:g}")
    return pd.DataFrame(columns=OBSERVATION_FIELDS, data={
        "observationID": event + "-" + found.detection.astype(int).astype(str),
        "deploymentID": found.deployment_id, "mediaID": media, "eventID": event,
        "eventStart": at, "eventEnd": at, "observationLevel": "event",
        "observationType": found.category.map(OBSERVATION_TYPES).fillna("unknown"),
        "count": 1, "individualPositionRadius": found.distance.round(3),
        "individualPositionAngle": np.round(position_angle(found.x1, found.x2, hfov), 2),
        "bboxX": found.x1, "bboxY": found.y1,
        "bboxWidth": np.maximum((found.x2 - found.x1).round(DECIMALS), 1e-15),
        "bboxHeight": np.maximum((found.y2 - found.y1).round(DECIMALS), 1e-15),
        "classificationMethod": "machine",
        "classifiedBy": f"MegaDetector (detection), chimpact {chimpact.__version__} (distance)",
        "classificationProbability": found.conf,
        "observationComments": [
            f"distance 80% interval {low:.2f}-{high:.2f} m; model {model_dir}"
            for low, high in zip(found.distance_low, found.distance_high)]})


def _deployments(deployments):
    table = deployments.reset_index(drop=True).reindex(columns=DEPLOYMENT_FIELDS)
    table["deploymentStart"] = deployments.start.map(_time).to_numpy()
    table["deploymentEnd"] = deployments.end.map(_time).to_numpy()
    integers = {f: pd.to_numeric(table[f]).round().astype("Int64") for f in _INTEGERS}
    return table.assign(**integers)


def _spatial(deployments):
    """GeoJSON of the deployments: a point, or their bounding box."""
    west, east = deployments.longitude.min(), deployments.longitude.max()
    south, north = deployments.latitude.min(), deployments.latitude.max()
    if west == east and south == north:
        return {"type": "Point", "coordinates": [float(west), float(south)]}
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [[[float(x), float(y)] for x, y in ring]]}


def package(deployments, title):
    """datapackage.json's content for the three tables of the `deployments`' survey."""
    return {
        "profile": PROFILE, "name": "chimpact-distances",
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "title": title,
        "contributors": [{"title": "chimpact (replace with the survey's people)",
                          "role": "contributor"}],
        "project": {"title": title, "samplingDesign": "systematicRandom",
                    "captureMethod": ["activityDetection"], "individualAnimals": False,
                    "observationLevel": ["event"]},
        "spatial": _spatial(deployments),
        "temporal": {"start": deployments.start.min().strftime("%Y-%m-%d"),
                     "end": deployments.end.max().strftime("%Y-%m-%d")},
        "taxonomic": [],
        "resources": [{"name": name, "path": f"{name}.csv", "profile": "tabular-data-resource",
                       "format": "csv", "mediatype": "text/csv", "encoding": "utf-8",
                       "schema": f"{SCHEMAS}/{name}-table-schema.json"}
                      for name in ("deployments", "media", "observations")],
    }


def write_package(out_dir, rows, deployments, starts, hfov=None, model_dir="", title="survey"):
    """Writes the package of run_field.py's detection `rows` to `out_dir`: `deployments`
    (read_deployments), `starts` {video_id: its start time}, `hfov` the cameras' horizontal
    field of view in degrees (None: no angle). datapackage.json comes last, so a package
    without it is unfinished."""
    storage.makedirs(out_dir)
    storage.write_csv(_deployments(deployments), storage.join(out_dir, "deployments.csv"))
    storage.write_csv(_media(rows, starts), storage.join(out_dir, "media.csv"))
    storage.write_csv(_observations(rows, starts, hfov, model_dir),
                      storage.join(out_dir, "observations.csv"))
    storage.atomic_write(storage.join(out_dir, "datapackage.json"),
                         json.dumps(package(deployments, title), indent=2))
