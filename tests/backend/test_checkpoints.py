"""Atomic checkpoints: a crash while writing never leaves a half-written checkpoint-last."""

from __future__ import annotations

import pytest
import torch

from backend import checkpoints as ckpt


def _model(value: float) -> torch.nn.Module:
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(value)
        model.bias.fill_(-value)
    return model


def _state(step: int) -> dict:
    optimizer = torch.optim.AdamW(_model(0.0).parameters())
    return {"step": step, "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}


def test_roundtrip_with_weights_only(tmp_path):
    ckpt.save_checkpoint(tmp_path / ckpt.LAST, _model(1.5), _state(7), {"step": 7, "note": "x"})
    restored = _model(0.0)
    loaded = ckpt.load_checkpoint(tmp_path, restored)  # the run folder resolves to checkpoint-last
    assert loaded["meta"] == {"step": 7, "note": "x"}
    assert loaded["trainer_state"]["step"] == 7
    assert torch.equal(restored.weight, torch.full((2, 3), 1.5))
    assert not list(tmp_path.glob(".*"))  # no temporary folders left behind


def test_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    ckpt.save_checkpoint(tmp_path / ckpt.LAST, _model(1.0), _state(1), {"step": 1})

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("process killed while writing trainer_state.pt")

    monkeypatch.setattr(torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(tmp_path / ckpt.LAST, _model(2.0), _state(2), {"step": 2})
    monkeypatch.undo()
    # The half-written folder is hidden beside it; checkpoint-last is still step 1, complete.
    assert list(tmp_path.glob(".checkpoint-last.tmp-*"))
    restored = _model(0.0)
    assert ckpt.load_checkpoint(tmp_path, restored)["meta"]["step"] == 1
    assert torch.equal(restored.weight, torch.full((2, 3), 1.0))
    # The next save cleans up and replaces it.
    ckpt.save_checkpoint(tmp_path / ckpt.LAST, _model(3.0), _state(3), {"step": 3})
    assert ckpt.load_checkpoint(tmp_path)["meta"]["step"] == 3


def test_kill_between_renames_falls_back_to_old(tmp_path):
    ckpt.save_checkpoint(tmp_path / ckpt.LAST, _model(1.0), _state(4), {"step": 4})
    # State after the first of the two renames of an update: only .checkpoint-last.old exists.
    (tmp_path / ckpt.LAST).rename(tmp_path / f".{ckpt.LAST}.old")
    assert ckpt.resolve_checkpoint(tmp_path) == tmp_path / f".{ckpt.LAST}.old"
    assert ckpt.load_checkpoint(tmp_path)["meta"]["step"] == 4
    ckpt.save_checkpoint(tmp_path / ckpt.LAST, _model(1.0), _state(5), {"step": 5})
    assert ckpt.resolve_checkpoint(tmp_path) == tmp_path / ckpt.LAST


def test_periodic_copy_and_missing_checkpoint_error(tmp_path):
    last = ckpt.save_checkpoint(tmp_path / ckpt.LAST, _model(1.0), _state(10), {"step": 10})
    kept = ckpt.copy_checkpoint(last, tmp_path / ckpt.periodic_name(10))
    assert kept.name == "checkpoint-0000010"
    assert ckpt.load_checkpoint(kept)["meta"]["step"] == 10
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        ckpt.load_checkpoint(tmp_path / "elsewhere")
