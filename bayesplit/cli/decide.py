"""Decision commands: allocate, frontier, report (issue 3)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the decision commands to the root app."""
