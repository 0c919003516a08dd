"""Camtrap DP 1.0's rules for its three tables, written out from the standard's table schemas
(deployments-, media- and observations-table-schema.json of tdwg/camtrap-dp 1.0): each field's
type, whether it is required, its range, enum or pattern, the unique and foreign keys. `check`
returns every broken rule of a written package, so a test can assert there are none."""

import datetime
import json
import re

import pandas as pd

PROFILE = "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0/camtrap-dp-profile.json"
S, N, I, D, B = "string", "number", "integer", "datetime", "boolean"
# name: [(field, type, required, constraints)], in the schema's order.
TABLES = {
    "deployments": [
        ("deploymentID", S, True, {"unique": True}), ("locationID", S, False, {}),
        ("locationName", S, False, {}), ("latitude", N, True, {"minimum": -90, "maximum": 90}),
        ("longitude", N, True, {"minimum": -180, "maximum": 180}),
        ("coordinateUncertainty", I, False, {"minimum": 1}),
        ("deploymentStart", D, True, {}), ("deploymentEnd", D, True, {}),
        ("setupBy", S, False, {}), ("cameraID", S, False, {}), ("cameraModel", S, False, {}),
        ("cameraDelay", I, False, {"minimum": 0}), ("cameraHeight", N, False, {"minimum": 0}),
        ("cameraDepth", N, False, {"minimum": 0}),
        ("cameraTilt", I, False, {"minimum": -90, "maximum": 90}),
        ("cameraHeading", I, False, {"minimum": 0, "maximum": 360}),
        ("detectionDistance", N, False, {"minimum": 0}), ("timestampIssues", B, False, {}),
        ("baitUse", B, False, {}), ("featureType", S, False, {"enum": [
            "roadPaved", "roadDirt", "trailHiking", "trailGame", "roadUnderpass",
            "roadOverpass", "roadBridge", "culvert", "burrow", "nestSite", "carcass",
            "waterSource", "fruitingTree"]}),
        ("habitat", S, False, {}), ("deploymentGroups", S, False, {}),
        ("deploymentTags", S, False, {}), ("deploymentComments", S, False, {})],
    "media": [
        ("mediaID", S, True, {"unique": True}), ("deploymentID", S, True, {}),
        ("captureMethod", S, False, {"enum": ["activityDetection", "timeLapse"]}),
        ("timestamp", D, True, {}),
        ("filePath", S, True, {"pattern": r"^(?=^[^./~])(^((?!\.{2}).)*$).*$"}),
        ("filePublic", B, True, {}), ("fileName", S, False, {}),
        ("fileMediatype", S, True, {"pattern": r"^(image|video|audio)/.*$"}),
        ("exifData", "any", False, {}), ("favorite", B, False, {}),
        ("mediaComments", S, False, {})],
    "observations": [
        ("observationID", S, True, {"unique": True}), ("deploymentID", S, True, {}),
        ("mediaID", S, False, {}), ("eventID", S, False, {}), ("eventStart", D, True, {}),
        ("eventEnd", D, True, {}),
        ("observationLevel", S, True, {"enum": ["media", "event"]}),
        ("observationType", S, True, {"enum": ["animal", "human", "vehicle", "blank",
                                               "unknown", "unclassified"]}),
        ("cameraSetupType", S, False, {"enum": ["setup", "calibration"]}),
        ("scientificName", S, False, {}), ("count", I, False, {"minimum": 1}),
        ("lifeStage", S, False, {"enum": ["adult", "subadult", "juvenile"]}),
        ("sex", S, False, {"enum": ["female", "male"]}), ("behavior", S, False, {}),
        ("individualID", S, False, {}),
        ("individualPositionRadius", N, False, {"minimum": 0}),
        ("individualPositionAngle", N, False, {"minimum": -90, "maximum": 90}),
        ("individualSpeed", N, False, {"minimum": 0}),
        ("bboxX", N, False, {"minimum": 0, "maximum": 1}),
        ("bboxY", N, False, {"minimum": 0, "maximum": 1}),
        ("bboxWidth", N, False, {"minimum": 1e-15, "maximum": 1}),
        ("bboxHeight", N, False, {"minimum": 1e-15, "maximum": 1}),
        ("classificationMethod", S, False, {"enum": ["human", "machine"]}),
        ("classifiedBy", S, False, {}), ("classificationTimestamp", D, False, {}),
        ("classificationProbability", N, False, {"minimum": 0, "maximum": 1}),
        ("observationTags", S, False, {}), ("observationComments", S, False, {})],
}
FOREIGN_KEYS = {"media": [("deploymentID", "deployments", "deploymentID")],
                "observations": [("deploymentID", "deployments", "deploymentID"),
                                 ("mediaID", "media", "mediaID")]}
MISSING = {"", "NA", "NaN", "nan"}


def _value(text, kind):
    """The parsed value of a non-missing cell, or raises ValueError."""
    if kind == N:
        return float(text)
    if kind == I:
        if not re.fullmatch(r"-?\d+", text):
            raise ValueError(text)
        return int(text)
    if kind == D:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")
    if kind == B and text not in ("true", "false", "TRUE", "FALSE", "True", "False", "1", "0"):
        raise ValueError(text)
    return text


def check(folder):
    """Every rule of Camtrap DP 1.0 that the package in `folder` breaks, as lines."""
    broken = []
    package = json.loads((folder / "datapackage.json").read_text())
    if package.get("profile") != PROFILE:
        broken.append(f"profile {package.get('profile')}")
    for required in ("resources", "created", "contributors", "project", "spatial", "temporal",
                     "taxonomic"):
        if required not in package:
            broken.append(f"datapackage.json lacks {required}")
    for field in ("title", "samplingDesign", "captureMethod", "individualAnimals",
                  "observationLevel"):
        if field not in package.get("project", {}):
            broken.append(f"project lacks {field}")
    tables = {}
    for name, fields in TABLES.items():
        resource = [r for r in package["resources"] if r["name"] == name]
        if not resource or resource[0]["schema"] != PROFILE.replace(
                "camtrap-dp-profile", f"{name}-table-schema"):
            broken.append(f"resource {name}: missing or another schema")
            continue
        table = pd.read_csv(folder / resource[0]["path"], dtype=str, keep_default_na=False)
        tables[name] = table
        if list(table.columns) != [f for f, *_ in fields]:
            broken.append(f"{name}: header {list(table.columns)}")
            continue
        for field, kind, required, rules in fields:
            for row, text in enumerate(table[field], start=2):
                if text in MISSING:
                    if required:
                        broken.append(f"{name} row {row}: {field} is required")
                    continue
                try:
                    value = _value(text, kind)
                except ValueError:
                    broken.append(f"{name} row {row}: {field} {text!r} is no {kind}")
                    continue
                if "minimum" in rules and value < rules["minimum"] or (
                        "maximum" in rules and value > rules["maximum"]):
                    broken.append(f"{name} row {row}: {field} {value} out of range")
                if "enum" in rules and value not in rules["enum"]:
                    broken.append(f"{name} row {row}: {field} {value!r} not allowed")
                if "pattern" in rules and not re.match(rules["pattern"], value):
                    broken.append(f"{name} row {row}: {field} {value!r} breaks its pattern")
            if rules.get("unique") and table[field].duplicated().any():
                broken.append(f"{name}: {field} not unique")
    for name, keys in FOREIGN_KEYS.items():
        for field, other, key in keys:
            if name in tables and other in tables:
                known = set(tables[other][key])
                for text in tables[name][field]:
                    if text not in MISSING and text not in known:
                        broken.append(f"{name}: {field} {text!r} not in {other}.{key}")
    return broken


def table_schema(name):
    """TABLES[name] as a Frictionless Table Schema (the standard's fields, types and
    constraints, as transcribed here), with its primary and foreign keys."""
    unique = [f for f, _, _, rules in TABLES[name] if rules.get("unique")]
    return {
        "fields": [{"name": field, "type": kind,
                    **({"format": "%Y-%m-%dT%H:%M:%S%z"} if kind == D else {}),
                    "constraints": {"required": required,
                                    **{k: v for k, v in rules.items() if k != "unique"}}}
                   for field, kind, required, rules in TABLES[name]],
        "missingValues": [""], "primaryKey": unique,
        "foreignKeys": [{"fields": field, "reference": {"resource": other, "fields": key}}
                        for field, other, key in FOREIGN_KEYS.get(name, [])]}


def offline_copy(folder):
    """The README's offline check: schemas/<name>-table-schema.json written in `folder` and
    datapackage-offline.json, a copy of datapackage.json without `profile` (which a validator
    fetches by URL) and with each table's schema the local file; its path."""
    package = json.loads((folder / "datapackage.json").read_text())
    package.pop("profile")
    (folder / "schemas").mkdir(exist_ok=True)
    for resource in package["resources"]:
        local = f"schemas/{resource['name']}-table-schema.json"
        (folder / local).write_text(json.dumps(table_schema(resource["name"])))
        resource["schema"] = local
    (folder / "datapackage-offline.json").write_text(json.dumps(package))
    return folder / "datapackage-offline.json"
