"""R's Distance flat file for camera-trap distance sampling (Howe et al. 2017): one row per
animal and snapshot moment, the deployment as the point (Sample.Label) with its effort in
snapshot moments, and each deployment without an animal present once with an empty distance,
so that `Distance::ds(table, transect = "point")` sees every point's effort.
"""

import numpy as np
import pandas as pd

from chimpact.errors import InputError

COLUMNS = ["Region.Label", "Area", "Sample.Label", "Effort", "object", "distance", "size",
           "video_id", "time", "detection"]
REGION = "survey"


def distance_table(rows, deployments, snapshot_s, truncate=None, area_km2=None):
    """The flat file of the detection rows (run_field.py's table, with deployment_id) at the
    `deployments` (read_deployments): Effort = active seconds / `snapshot_s`; rows outside
    `truncate` (left, right metres) dropped; Area `area_km2` (0, density only, without)."""
    animals = rows[rows.distance.notna()]
    if truncate is not None:
        left, right = truncate
        animals = animals[(animals.distance >= left) & (animals.distance <= right)]
    unknown = sorted(set(animals.deployment_id) - set(deployments.index))
    if unknown:
        raise InputError(f"--deployments_csv: deployment(s) {', '.join(unknown[:5])} of the "
                         "detections are not in it (add them, or give --videos_csv)")
    effort = deployments.active_s / snapshot_s
    parts = []
    for deployment_id in deployments.index:
        found = animals[animals.deployment_id == deployment_id]
        if len(found):
            part = pd.DataFrame({"distance": found.distance.to_numpy(), "size": 1,
                                 "video_id": found.video_id.to_numpy(),
                                 "time": found.time.to_numpy(),
                                 "detection": found.detection.to_numpy()})
        else:
            part = pd.DataFrame({"distance": [np.nan], "size": [np.nan]})
        parts.append(part.assign(**{"Sample.Label": deployment_id,
                                    "Effort": effort[deployment_id]}))
    table = pd.concat(parts, ignore_index=True).reindex(columns=COLUMNS)
    table["Region.Label"] = REGION
    table["Area"] = 0.0 if area_km2 is None else float(area_km2)
    has_animal = table.distance.notna()
    table["object"] = pd.array([pd.NA] * len(table), dtype="Int64")
    table.loc[has_animal, "object"] = np.arange(1, has_animal.sum() + 1)
    return table.astype({"size": "Int64", "detection": "Int64"})
