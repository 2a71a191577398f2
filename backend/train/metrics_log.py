"""``OUT/metrics.jsonl``: one JSON object per logged optimiser step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Union

from ..conventions import json_safe


class MetricsLog:
    """Appends step records to a JSON-lines file.

    Args:
        path: The ``metrics.jsonl`` file.
        resume_step: When resuming, records of steps after this one (logged by the interrupted run
            after its last checkpoint, and about to be redone) are dropped first.
    """

    def __init__(self, path: Union[str, Path], resume_step: int = 0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step > 0 and self.path.exists():
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        elif resume_step == 0:
            self.path.write_text("")

    def write(self, record: Dict[str, Any]) -> None:
        """Append one record (flushed at once, so a killed run keeps what it logged)."""
        with self.path.open("a") as stream:
            stream.write(json.dumps(json_safe(record)) + "\n")


def read_metrics(path: Union[str, Path]) -> List[Dict[str, Any]]:
    """All complete records of a metrics file (a torn last line from a kill is skipped)."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
