"""Choosing the device a model runs on."""

from __future__ import annotations

import logging
import sys
import typing as t

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_DEVICE", "choose_device", "device_available"]


class _DefaultDevice(str):
    """The string ``'cpu'`` marked as "not chosen by the user"."""

    __slots__ = ()


#: ``Model.device``'s default: equal to ``'cpu'``, but known to be a default, so the
#: first available of ``preferred_devices`` is used instead.
DEFAULT_DEVICE = _DefaultDevice("cpu")


def device_available(device: str) -> bool:
    """Whether torch can use ``device`` here (``cpu`` always can). Imports torch only if needed."""
    kind = device.split(":", 1)[0]
    if kind == "cpu":
        return True
    if "torch" not in sys.modules:
        try:
            import torch  # noqa: F401
        except ImportError:
            return False
    import torch

    if kind == "cuda":
        if not torch.cuda.is_available():
            return False
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        return index < torch.cuda.device_count()
    if kind == "mps":
        return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return False


def choose_device(device: str, preferred_devices: t.Sequence[str] | None) -> str:
    """The device to load on: ``device`` if the user set it, else the first available preferred one.

    Example:
        >>> choose_device("cpu", ())
        'cpu'
    """
    if not isinstance(device, _DefaultDevice) or not preferred_devices:
        return str(device)
    for candidate in preferred_devices:
        if device_available(candidate):
            return candidate
    logger.info("None of %s is available; using cpu", list(preferred_devices))
    return "cpu"
