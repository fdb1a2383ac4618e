"""Progress bars: tqdm, shown by default only when pinnacle logs at INFO or below."""

from __future__ import annotations

import contextlib
import logging
import typing as t

__all__ = ["progress_bar", "reporting"]


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


class _Reporting:
    """A bar whose every ``update`` (one committed batch) is also told to ``on_batch``."""

    def __init__(self, bar: t.Any, on_batch: t.Callable[[int], None]):
        self.bar, self.on_batch = bar, on_batch

    def update(self, n: int = 1) -> None:
        self.bar.update(n)
        self.on_batch(n)


def reporting(bar: t.Any, on_batch: t.Optional[t.Callable[[int], None]]) -> t.Any:
    """``bar``, also calling ``on_batch(rows)`` on each update when given."""
    return bar if on_batch is None else _Reporting(bar, on_batch)
