"""Where the checkout's build scripts and examples are: configured from outside the source tree.

``THV_CHECKOUT`` names the checkout (the directory holding ``tools/`` and ``examples/``), like
envtest's ``KUBEBUILDER_ASSETS``; without it the current directory and its parents are searched.
The project's scripts (``scripts/*.sh``, ``.ci/run``) run from the checkout, so neither is needed
there.
"""

from __future__ import annotations

import os
from pathlib import Path


class CheckoutNotFoundError(RuntimeError):
    """Neither ``THV_CHECKOUT`` nor the current directory leads to a thv checkout."""


def checkout() -> Path:
    """The thv checkout: ``$THV_CHECKOUT`` or the nearest directory above the current one with
    ``tools/controlplane/build.sh``."""
    explicit = os.environ.get("THV_CHECKOUT")
    if explicit:
        root = Path(explicit).resolve()
        if not (root / "tools").is_dir():
            raise CheckoutNotFoundError(f"THV_CHECKOUT={explicit} has no tools/ directory")
        return root
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "tools" / "controlplane" / "build.sh").is_file():
            return candidate
    raise CheckoutNotFoundError(
        "cannot find the thv checkout: run from inside it or set THV_CHECKOUT=/path/to/checkout"
    )


def tool_script(tool: str) -> Path:
    """``tools/<tool>/build.sh`` of the checkout."""
    return checkout() / "tools" / tool / "build.sh"


def find_tool_script(tool: str) -> Path | None:
    """``tools/<tool>/build.sh`` of the checkout, or ``None`` outside one (cached builds only)."""
    try:
        script = tool_script(tool)
    except CheckoutNotFoundError:
        return None
    return script if script.is_file() else None
