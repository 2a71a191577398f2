"""scripts/pretrain_long.py: its recipes are valid configs and its runs are msgfm pretrain runs that
resume where they stopped (the runs themselves take hours: `make pretrain-long`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from backend.models.config import get_config

from .script_modules import load_file

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pretrain_long.py"


def _script():
    return load_file(SCRIPT, "pretrain_long")


def test_recipes_are_lite_with_their_objectives(tmp_path):
    script = _script()
    lite = get_config("lite").to_dict()
    for recipe, changes in script.RECIPES.items():
        config = get_config(str(script.write_config(recipe, tmp_path)))
        got = config.to_dict()
        assert {k: got[k] for k in changes} == changes
        same = {k for k in lite if k not in changes and k != "name"}
        assert {k: got[k] for k in same} == {k: lite[k] for k in same}
    assert script.RECIPES["align-vicreg"]["variance_weight"] > 0


def test_a_run_resumes_only_from_its_own_checkpoint(tmp_path):
    from backend.train.pretrain import add_pretrain_arguments

    script = _script()
    args = argparse.Namespace(
        out=str(tmp_path), steps=20000, probe_every=1000, checkpoint_every=250, keep_every=5000,
        threads=1,
    )  # fmt: skip
    parser = argparse.ArgumentParser()
    add_pretrain_arguments(parser)
    flags = script.run_args("align", 1, args)
    parsed = parser.parse_args(flags[1:])
    assert (parsed.max_steps, parsed.seed, parsed.threads) == (20000, 1, 1)
    assert not parsed.resume and parsed.out == str(tmp_path / "align-seed1")
    (tmp_path / "align-seed1" / "checkpoint-last").mkdir(parents=True)
    assert parser.parse_args(script.run_args("align", 1, args)[1:]).resume
    assert not script.finished(tmp_path / "align-seed1", 20000)
