"""Output files on disk: their modes follow the umask, unwritable folders and killed runs.

Every test runs ``msgfm predict`` on a real raster, in a subprocess where the umask or a signal is
part of what is tested.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.cli import main
from backend.inference.outputs import output_paths
from backend.run_scratch import is_stale, owner_tag, remove_stale

ROOT = str(Path(__file__).resolve().parents[3])


def _predict(args, umask=None, **kwargs):
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "predict", *map(str, args)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
        **kwargs,
    )


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder no file can be created in: read-only for a normal user; /sys for root."""
    if os.geteuid() == 0:
        return Path("/sys")  # root ignores file modes; sysfs refuses new files even to root
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_get_the_mode_the_umask_gives(model_factory, sample_data, tmp_path, umask):
    model = model_factory("scene", bands=1, tile=64)
    out, grid = tmp_path / "scenes.tif", tmp_path / "scenes.gpkg"
    dem = sample_data / "dem/dem.tif"
    run = _predict(
        ["--model", model, "--input", f"s2={dem}", "--out", out, "--scene-grid", grid], umask
    )
    _, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    for path in (out, grid):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_unwritable_output_folder_is_a_clear_error(model_factory, sample_data, tmp_path, capsys):
    model = model_factory("identity", bands=1, tile=64)
    out = unwritable_folder(tmp_path) / "out.tif"
    code = main(
        [
            "predict",
            "--model",
            str(model),
            "--input",
            f"s2={sample_data / 'dem/dem.tif'}",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert f"cannot write to the output folder {out.parent}" in err
    assert "Traceback" not in err


def test_output_names_from_metadata_stay_in_the_output_folder(tmp_path):
    from backend.export.schema import OutputSpec

    specs = [
        OutputSpec(name="first", kind="embedding", bands=["f"]),
        OutputSpec(name="../../etc/evil\nname", kind="embedding", bands=["f"]),
        OutputSpec(name="...", kind="embedding", bands=["f"]),
    ]
    paths = output_paths(tmp_path / "out.tif", specs)
    assert paths[1] == tmp_path / "out_etc_evil_name.tif"
    assert paths[2] == tmp_path / "out_output.tif"


def _wait_for_partial(folder: Path, run: subprocess.Popen) -> Path:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        partial = list(folder.glob(".*.partial.tif"))
        if partial:
            return partial[0]
        assert run.poll() is None, run.communicate()[1]
        time.sleep(0.05)
    raise AssertionError("the run never started writing")


def _slow_run(model_factory, sample_data, out: Path) -> subprocess.Popen:
    # The largest sample scene with tiny tiles and batches: a run of many seconds.
    model = model_factory("boxmean", bands=3, tile=32)
    rgb = sample_data / "rgb/OSBS_029.tif"
    return _predict(
        [
            "--model",
            model,
            "--input",
            f"s2={rgb}:1,2,3",
            "--out",
            out,
            "--batch",
            "1",
            "--overlap",
            "0.5",
            "--device",
            "cpu",
            "--threads",
            "1",
        ]
    )


def test_sigterm_leaves_no_partial_output(model_factory, sample_data, tmp_path):
    out = tmp_path / "out.tif"
    run = _slow_run(model_factory, sample_data, out)
    _wait_for_partial(tmp_path, run)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert "interrupted; no output written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("interrupted_at", ["open", "set_band_description"])
def test_an_interrupt_while_the_output_is_created_leaves_no_partial_file(
    tmp_path, monkeypatch, interrupted_at
):
    """SIGTERM (KeyboardInterrupt in `msgfm predict`) can land while the partial GeoTIFF is being
    created, before the run can abort it: the writer removes it itself (a CI run once kept one)."""
    import rasterio
    from affine import Affine

    from backend.inference.inputs import ReferenceGrid
    from backend.inference.writers import GeoTiffWriter

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    if interrupted_at == "open":
        monkeypatch.setattr(rasterio, "open", interrupt)
    else:
        monkeypatch.setattr(rasterio.io.DatasetWriter, "set_band_description", interrupt)
    grid = ReferenceGrid(None, Affine.identity(), 64, 64, None, "float32")
    with pytest.raises(KeyboardInterrupt):
        GeoTiffWriter(tmp_path / "out.tif", grid, 1, 2, "float32", -9999.0, ["a", "b"])
    assert list(tmp_path.iterdir()) == []


def test_partial_output_of_a_killed_run_is_removed_by_the_next(
    model_factory, sample_data, tmp_path
):
    out = tmp_path / "out.tif"
    run = _slow_run(model_factory, sample_data, out)
    partial = _wait_for_partial(tmp_path, run)
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=60)
    assert partial.exists() and is_stale(partial.name)
    # A live run's partial file (this process's) is never taken for a stale one.
    live = tmp_path / f".other.{owner_tag()}.x.partial.tif"
    live.write_bytes(b"")
    model = model_factory("identity", bands=1, tile=64)
    rerun = _predict(
        [
            "--model",
            model,
            "--input",
            f"s2={sample_data / 'dem/dem.tif'}",
            "--out",
            tmp_path / "second.tif",
        ]
    )
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert not partial.exists()
    assert live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "second.tif"]


def test_only_entries_of_ended_processes_of_this_host_are_stale(tmp_path):
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(ended.stdout)
    tag = owner_tag().rsplit("-p", 1)[0]
    names = {
        f"msgfm-layers-{tag}-p{pid}-abc": True,  # ended process of this host
        # mkdtemp's random part may start with p and a digit (a CI run left one such folder).
        f".msgfm-{tag}-p{pid}-p9z992tw": True,
        f".out.{tag}-p{pid}.p1x.partial.tif": True,  # a partial file of `msgfm predict`
        f"msgfm-layers-{owner_tag()}-abc": False,  # this (live) process
        f"msgfm-layers-hother-host-p{pid}-abc": False,  # another host's, whatever its pid
        f"msgfm-layers-hx{tag[1:]}-p{pid}-abc": False,  # a host whose name ends in this one's
        "msgfm-layers-abc": False,  # no owner: left alone
    }
    for name in names:
        (tmp_path / name).mkdir()
    removed = remove_stale(tmp_path, "*")
    assert sorted(p.name for p in removed) == sorted(n for n, stale in names.items() if stale)


def test_a_host_name_holding_dash_p_digits_is_read_whole(monkeypatch):
    import backend.run_scratch as scratch

    monkeypatch.setattr(scratch, "_host", lambda: "build-p7")
    assert scratch._owner_pid(".msgfm-hbuild-p7-p123-p9ab") == 123
    assert scratch._owner_pid(".x.hbuild-p7-p45.p6c.partial.tif") == 45
    assert scratch._owner_pid(".msgfm-hbuild-p8-p123-abc") is None  # another host


def test_scratch_entries_and_checkpoints_get_the_umask_modes(tmp_path):
    """Temporary files and folders that become outputs, and a training checkpoint folder."""
    import torch

    from backend.checkpoints import save_checkpoint
    from backend.files import output_tempdir, output_tempfile

    previous = os.umask(0o027)
    try:
        handle, name = output_tempfile(tmp_path, ".x.")
        os.close(handle)
        folder = output_tempdir(tmp_path, "run-")
        checkpoint = save_checkpoint(
            tmp_path / "run" / "checkpoint-last",
            torch.nn.Linear(2, 2),
            {"step": torch.tensor(1)},
            {"step": 1},
        )
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(name).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o750
    assert stat.S_IMODE(checkpoint.stat().st_mode) == 0o750
    for item in checkpoint.iterdir():
        assert stat.S_IMODE(item.stat().st_mode) == 0o640, item
