"""A synthetic BigEarthNet-S2 + BigEarthNet-S1 folder in the published layout.

Three S2 patches (``S2/<patch>/<patch>_B01.tif`` ... ``_B12.tif``, ``_B8A.tif`` at 10, 20 and 60 m:
120, 60 and 20 pixels; ``<patch>_labels_metadata.json`` with CORINE names) and two S1 patches
(``S1/<patch>/<patch>_VV.tif``, ``_VH.tif`` on the 10 m grid, metadata naming their S2 patch), so
the third S2 patch has no S1 partner. Every band is constant, ``band_value(patch, band)``, so any
resampling keeps it exactly; VV and VH are ``-10 - patch`` and ``-17 - patch`` dB.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np

S2_BANDS = {  # band: pixel size (m)
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B8A": 20, "B09": 60, "B11": 20, "B12": 20,
}  # fmt: skip
PATCH_M = 1200  # a patch is 1.2 km square
# S2 patch name: CORINE level-3 labels (the third maps only to classes the 19-class scheme keeps).
LABELS: Dict[str, List[str]] = {
    "S2A_MSIL2A_20170613T101031_0_45": ["Coniferous forest", "Mixed forest", "Transitional woodland/shrub"],
    "S2A_MSIL2A_20170613T101031_0_46": ["Non-irrigated arable land", "Road and rail networks and associated land"],
    "S2B_MSIL2A_20180204T94161_1_1": ["Sea and ocean"],
}  # fmt: skip
S1_FOR = {  # S1 patch name: its S2 patch
    "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_0_45": "S2A_MSIL2A_20170613T101031_0_45",
    "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_0_46": "S2A_MSIL2A_20170613T101031_0_46",
}
EPSG = 32633
ORIGIN = (399960.0, 5800020.0)  # upper-left corner of the first patch (UTM 33N)


def band_value(patch_index: int, band: str) -> int:
    """The constant value of ``band`` in S2 patch ``patch_index`` (reflectance x 10000)."""
    return 100 * (list(S2_BANDS).index(band) + 1) + 7 * patch_index


def _write(path: Path, value: float, pixel_m: int, dtype: str, left: float, top: float) -> None:
    import rasterio
    from rasterio.transform import from_origin

    size = PATCH_M // pixel_m
    with rasterio.open(
        path, "w", driver="GTiff", width=size, height=size, count=1, dtype=dtype,
        crs=f"EPSG:{EPSG}", transform=from_origin(left, top, pixel_m, pixel_m),
    ) as dst:  # fmt: skip
        dst.write(np.full((1, size, size), value, dtype=dtype))


def generate(root: Path) -> Path:
    """Write the folder under ``root`` (``root/S2``, ``root/S1``) and return ``root``."""
    root = Path(root)
    corners = {}
    for index, (patch, labels) in enumerate(LABELS.items()):
        left, top = ORIGIN[0] + index * PATCH_M, ORIGIN[1]
        corners[patch] = (left, top)
        folder = root / "S2" / patch
        folder.mkdir(parents=True, exist_ok=True)
        for band, pixel_m in S2_BANDS.items():
            _write(
                folder / f"{patch}_{band}.tif",
                band_value(index, band),
                pixel_m,
                "uint16",
                left,
                top,
            )
        (folder / f"{patch}_labels_metadata.json").write_text(
            json.dumps({"labels": labels, "projection": f"EPSG:{EPSG}"})
        )
    for s1, s2 in S1_FOR.items():
        index = list(LABELS).index(s2)
        folder = root / "S1" / s1
        folder.mkdir(parents=True, exist_ok=True)
        for pol, base in (("VV", -10.0), ("VH", -17.0)):
            _write(folder / f"{s1}_{pol}.tif", base - index, 10, "float32", *corners[s2])
        (folder / f"{s1}_labels_metadata.json").write_text(
            json.dumps({"labels": LABELS[s2], "corresponding_s2_patch": s2})
        )
    return root


if __name__ == "__main__":
    print(generate(Path(sys.argv[1] if len(sys.argv) > 1 else "bigearthnet-synthetic")))
