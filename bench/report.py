"""Where every benchmark's JSON report goes: ``write_report(out, report)``.

Each ``bench/*.py`` ends by writing one JSON document to its ``--out`` path (``make
bench`` collects them in bench/results/); this is the one place that writes them, with
the command line that produced the figures recorded beside them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def write_report(out: str | Path, report: dict[str, Any]) -> None:
    """Write ``report`` (plus ``command``: this process's argv, unless it has one) as
    indented JSON to ``out``, creating its directory."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"command": sys.argv, **report} if "command" not in report else report
    path.write_text(json.dumps(doc, indent=1) + "\n")
