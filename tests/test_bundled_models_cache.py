"""The tests' own bundled models are rebuilt when a model's architecture changes: the cache key
covers every backend source (the heads, the task registry) besides the recipe."""

import shutil

from tests import bundled_models


def test_cache_key_follows_the_heads_and_the_recipe(tmp_path, monkeypatch):
    relatives = (
        "backend/models/heads.py",
        "backend/tasks/pansharpening.py",
        "tests/bundled_models.py",
    )
    for relative in relatives:
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(bundled_models.ROOT / relative, target)
    monkeypatch.setattr(bundled_models, "ROOT", tmp_path)
    monkeypatch.setattr(bundled_models, "__file__", str(tmp_path / "tests/bundled_models.py"))
    first = bundled_models.cache_key()
    assert bundled_models.cache_key() == first  # the same sources, the same models

    head = tmp_path / "backend/models/heads.py"
    head.write_text(head.read_text() + "\n# a changed head\n")
    second = bundled_models.cache_key()
    assert second != first

    task = tmp_path / "backend/tasks/pansharpening.py"
    task.write_text(task.read_text().replace("brovey-residual-image", "residual-image"))
    assert bundled_models.cache_key() not in (first, second)


# Run by two processes at once: each "builds" by appending its pid to a log, slowly.
_BUILDER = """
import os, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from tests import bundled_models

def build(out, samples, work):
    with open({log!r}, "a") as log:
        log.write(f"{{os.getpid()}}\\n")
    time.sleep(1.5)
    out.mkdir(parents=True)
    (out / bundled_models.MANIFEST_FILE).write_text("{{}}")
    return out

bundled_models.build_models = build
bundled_models.cache_key = lambda: "same-sources"
print(bundled_models.owned_models(Path("."), Path(".")))
"""


def test_two_processes_at_once_build_the_folder_once(tmp_path):
    """make test's two pytest processes both need the folder on a fresh machine: one builds it,
    the other waits and reuses it."""
    import os
    import subprocess
    import sys

    log = tmp_path / "builds.log"
    script = tmp_path / "builder.py"
    script.write_text(_BUILDER.format(root=str(bundled_models.ROOT), log=str(log)))
    env = {**os.environ, "MSGFM_TEST_MODELS_CACHE": str(tmp_path / "cache")}
    runs = [
        subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    folders = {run.communicate(timeout=120)[0].strip() for run in runs}
    assert [run.returncode for run in runs] == [0, 0]
    assert folders == {str(tmp_path / "cache" / "same-sources")}
    assert len(log.read_text().split()) == 1  # built once
