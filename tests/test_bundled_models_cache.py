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
