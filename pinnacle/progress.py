"""Progress bars: tqdm, shown by default only when pinnacle logs at INFO or below."""

from __future__ import annotations

import contextlib
import logging
import typing as t

__all__ = ["progress_bar"]


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


@contextlib.contextmanager
def progress_bar(total: int, desc: str, unit: str = "row", show: t.Optional[bool] = None) -> t.Iterator[t.Any]:
    """A tqdm bar, or a no-op when ``show`` is false (default: on at INFO logging)."""
    if show is None:
        show = logging.getLogger("pinnacle").isEnabledFor(logging.INFO)
    if not show or total <= 0:
        yield _NoBar()
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, unit=unit) as bar:
        yield bar
