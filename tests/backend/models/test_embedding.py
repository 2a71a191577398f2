"""Adding a sensor: nearest-wavelength initialisation of its patch embedding, and using it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from backend.models.config import get_config
from backend.models.cross_sensor_mim import MsGFMPretrainModel, SubBatch
from backend.models.embedding import nearest_band_sources
from backend.sensors import get_sensor, normalize, select_bands


def test_nearest_band_sources_by_wavelength_and_name():
    s2, landsat = get_sensor("s2"), get_sensor("landsat")
    # ETM+ B1 485 -> B02 490, B2 560 -> B03, B3 660 -> B04 665, B4 835 -> B08 842,
    # B5 1650 -> B11 1610, B7 2220 -> B12 2190.
    chosen = [s2.bands[i] for i in nearest_band_sources(landsat, s2)]
    assert chosen == ["B02", "B03", "B04", "B08", "B11", "B12"]
    assert [s2.bands[i] for i in nearest_band_sources(get_sensor("rgb"), s2)] == [
        "B04",
        "B03",
        "B02",
    ]
    assert [
        get_sensor("rgb").bands[i]
        for i in nearest_band_sources(get_sensor("pan"), get_sensor("rgb"))
    ] == ["R"]
    with pytest.raises(ValueError, match="no wavelengths to match"):
        nearest_band_sources(get_sensor("sar"), s2)


def test_add_sensor_copies_the_nearest_input_channel_weights_and_trains(samples_root):
    torch.manual_seed(0)
    # The paper's four sensors, without the Landsat one the default config has.
    config = dataclasses.replace(get_config("small"), sensors=["rgb", "s2", "sar", "dsm"])
    model = MsGFMPretrainModel(config)
    source = model.encoder.embeddings["s2"]
    model.add_sensor("landsat", init_from="s2")
    added = model.encoder.embeddings["landsat"]
    assert "landsat" in model.config.sensors and "landsat" in model.decoders
    s2_index = {b: i for i, b in enumerate(get_sensor("s2").bands)}
    for j, band in enumerate(["B02", "B03", "B04", "B08", "B11", "B12"]):
        torch.testing.assert_close(added.proj.weight[:, j], source.proj.weight[:, s2_index[band]])
    torch.testing.assert_close(added.proj.bias, source.proj.bias)
    torch.testing.assert_close(added.norm.weight, source.norm.weight)
    # Not a shared tensor: training the new sensor leaves the S2 embedding alone.
    assert added.proj.weight.data_ptr() != source.proj.weight.data_ptr()

    # Without init_from the embedding is fresh; twice is an error.
    model.add_sensor("pan")
    assert not torch.allclose(
        model.encoder.embeddings["pan"].proj.weight[:, 0], source.proj.weight[:, s2_index["B04"]]
    )
    with pytest.raises(ValueError, match="already has a patch embedding"):
        model.add_sensor("landsat")

    # A step on real Landsat-7 crops (GRASS NC sample, bands chosen by file name) trains it.
    import rasterio

    files = sorted((samples_root / "landcover").glob("lsat7_2000_*.tif"))
    bands = []
    for i in select_bands("landsat", [f.name for f in files]):
        with rasterio.open(files[i]) as dataset:
            bands.append(dataset.read(1, window=((100, 196), (100, 196))).astype(np.float32))
    image = torch.from_numpy(normalize("landsat", np.stack(bands)))[None].repeat(2, 1, 1, 1)
    before = added.proj.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    output = model([SubBatch("landsat", image)])
    output.loss.backward()
    optimizer.step()
    assert not torch.allclose(added.proj.weight, before)
    assert source.proj.weight.grad is None
