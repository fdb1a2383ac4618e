"""Calling a model on a batch so that one bad input never sinks the others."""

from __future__ import annotations

import logging
import typing as t

from pinnacle.components.model import Model

logger = logging.getLogger(__name__)

__all__ = ["predict_isolating", "PredictError"]


class PredictError:
    """The exception one input raised, kept as data."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException):
        self.exc = exc

    @property
    def error_type(self) -> str:
        return type(self.exc).__name__

    def __str__(self) -> str:
        return str(self.exc) or self.error_type


def predict_isolating(model: Model, inputs: t.Sequence[t.Any]) -> list[t.Any]:
    """``model.predict_batches(inputs)``; when the batch fails, split it to find the failing inputs.

    Returns one entry per input: the output, or a :class:`PredictError`. A failure
    costs about ``log2(len(inputs))`` extra calls per failing input. An ``ImportError``
    (the model needs a module this process lacks) is raised: the claimed rows go back to
    the queue untouched, for a process that has it.
    """
    if not inputs:
        return []
    try:
        outputs = model.predict_batches(list(inputs))
    except ImportError:
        raise  # the model cannot run in this process (a module it needs is missing): no input's fault
    except Exception as exc:  # noqa: BLE001 - any model failure is data here
        if len(inputs) == 1:
            return [PredictError(exc)]
        logger.debug("%s: batch of %d failed (%s); splitting", model.identifier, len(inputs), exc)
        middle = len(inputs) // 2
        return predict_isolating(model, inputs[:middle]) + predict_isolating(model, inputs[middle:])
    outputs = list(outputs)
    if len(outputs) != len(inputs):
        error = PredictError(
            RuntimeError(f"predict_batches returned {len(outputs)} outputs for {len(inputs)} inputs")
        )
        return [error] * len(inputs)
    return outputs
