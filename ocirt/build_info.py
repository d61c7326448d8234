"""Where this build came from (``ocirt --version``'s commit line)."""

from __future__ import annotations

import os


def commit() -> str:
    """The git commit recorded at install, else asked of the checkout, else 'unknown'."""
    here = os.path.dirname(__file__)
    try:
        with open(os.path.join(here, "_shim", "commit.txt")) as f:
            return f.read().strip() or "unknown"
    except OSError:
        pass
    head = os.path.join(here, os.pardir, ".git", "HEAD")
    try:
        with open(head) as f:
            ref = f.read().strip()
        if ref.startswith("ref: "):
            with open(os.path.join(os.path.dirname(head), ref[5:])) as f:
                return f.read().strip()
        return ref
    except OSError:
        return "unknown"
