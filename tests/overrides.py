"""Config overrides the tests share."""

from __future__ import annotations

#: The front-end off, as a tiny test backbone is pretrained (the run and finetune defaults
#: turn it on, for the default backbone); a run of that backbone must say the same.
FRONTEND_OFF = [
    "data.images.frontend.recentre=false",
    "data.images.frontend.resample=false",
    "data.images.frontend.gate=false",
]


def set_flags(overrides: list[str]) -> list[str]:
    """The same overrides as CLI arguments: ``--set key=value`` each."""
    return [part for item in overrides for part in ("--set", item)]
