"""Plugins for Listener: small functions that register handlers on a listener."""

from plugins.job_handler import Tick, job_handler

__all__ = ["Tick", "job_handler"]
