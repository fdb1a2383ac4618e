"""The Model component: a native model behind one predict interface."""

from __future__ import annotations

import dataclasses as dc
import typing as t

from pinnacle.base.component import Component
from pinnacle.components.datatype import MultiVector, Text, Vector
from pinnacle.components.devices import DEFAULT_DEVICE, choose_device
from pinnacle.errors import ConfigError

__all__ = ["Model", "Signature", "SIGNATURES"]

Signature = t.Literal["*args", "**kwargs", "*args,**kwargs", "singleton"]
SIGNATURES: tuple[str, ...] = t.get_args(Signature)


@dc.dataclass(kw_only=True, repr=False)
class Model(Component):
    """Base of every model component.

    Subclasses implement :meth:`predict` (one input) and may override
    :meth:`predict_batches` (many inputs at once) for speed.

    Args:
        preferred_devices: Devices to try in order when ``device`` is left at its default.
        device: The device to use; set it to pin one (e.g. ``'cuda:1'``).
        signature: How one input reaches :meth:`predict`: ``'singleton'`` (``predict(x)``),
            ``'*args'`` (``predict(*x)``), ``'**kwargs'`` (``predict(**x)``) or
            ``'*args,**kwargs'`` (``x == (args, kwargs)``).
        datatype: Datatype of outputs; found from the model when not given.
        output_schema: Output schema for models returning several fields.
        flatten: The model returns a list per input; each item is stored as its own output
            (keyed ``"<source id>/<position>"``), and recomputing a row replaces all its items.
        model_update_kwargs: Keyword arguments for model updates.
        predict_kwargs: Keyword arguments passed to the native predict call.
        compute_kwargs: Options for the compute backend (Ray: ``num_cpus``, ``num_gpus``...).
        validation: Validation data sets.
        metric_values: Metric values recorded for the model.

    Example:
        >>> class Length(Model):
        ...     def predict(self, x):
        ...         return [float(len(x))]
        >>> Length("length", signature="singleton").predict_batches(["ab", "abc"])
        [[2.0], [3.0]]
    """

    type_id: t.ClassVar[str] = "Model"
    uuid_excludes: t.ClassVar[frozenset[str]] = frozenset(
        {"preferred_devices", "device", "compute_kwargs", "validation", "metric_values", "model_update_kwargs", "datatype"}
    )

    preferred_devices: t.Sequence[str] = ("cuda", "mps", "cpu")
    device: str = dc.field(default=DEFAULT_DEVICE, metadata={"omit_default": True})
    artifacts: dc.InitVar[t.Optional[dict]] = None
    signature: Signature = "*args"
    datatype: t.Any = None
    output_schema: t.Any = None
    flatten: bool = False
    model_update_kwargs: dict = dc.field(default_factory=dict)
    predict_kwargs: dict = dc.field(default_factory=dict)
    compute_kwargs: dict = dc.field(default_factory=dict)
    validation: t.Any = None
    metric_values: dict = dc.field(default_factory=dict)

    def __post_init__(self, db=None, artifacts=None) -> None:
        if self.signature not in SIGNATURES:
            raise ConfigError(
                f"Model {self.identifier!r}: signature {self.signature!r} is not valid; "
                f"valid ones are {list(SIGNATURES)}."
            )
        if isinstance(self.preferred_devices, list):
            self.preferred_devices = tuple(self.preferred_devices)
        for name in ("model_update_kwargs", "predict_kwargs", "compute_kwargs", "metric_values"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"Model {self.identifier!r}: {name} must be a dict.")
        super().__post_init__(db)
        if artifacts:
            self.on_artifacts_loaded(artifacts)

    # -- prediction ---------------------------------------------------------------
    def predict(self, *args, **kwargs) -> t.Any:
        """Predict for one input."""
        raise NotImplementedError(f"{type(self).__name__} does not implement predict().")

    def predict_batches(self, inputs: t.Sequence[t.Any]) -> list[t.Any]:
        """Predict for many inputs, each shaped as ``signature`` says. Override to batch."""
        return [self.call_with_signature(self.predict, x) for x in inputs]

    def predict_query(self, x: t.Any) -> t.Any:
        """Predict for a search query. Models with a query side (prompts, prefixes) override."""
        return self.call_with_signature(self.predict, x)

    def call_with_signature(self, fn: t.Callable, x: t.Any) -> t.Any:
        if self.signature == "singleton":
            return fn(x)
        if self.signature == "*args":
            return fn(*x) if isinstance(x, (tuple, list)) else fn(x)
        if self.signature == "**kwargs":
            return fn(**x)
        args, kwargs = x
        return fn(*args, **kwargs)

    def validate_input(self, x: t.Any) -> str | None:
        """Why ``x`` cannot be predicted (a short reason), or ``None`` if it looks fine."""
        return None

    # -- metadata -----------------------------------------------------------------
    def resolved_device(self) -> str:
        """The device this model loads on (see ``device`` and ``preferred_devices``)."""
        return choose_device(self.device, self.preferred_devices)

    def output_datatype(self) -> Vector | MultiVector | Text:
        """The datatype of outputs: ``datatype`` when given, else inferred (may load the model)."""
        if isinstance(self.datatype, (Vector, MultiVector, Text)):
            return self.datatype
        if isinstance(self.datatype, int):
            return Vector(self.datatype)
        if self.datatype is None:
            return self.infer_datatype()
        raise ConfigError(f"Model {self.identifier!r}: datatype {self.datatype!r} is not a Vector, a MultiVector, a Text or an int.")

    def infer_datatype(self) -> Vector | MultiVector:
        """Datatype found from the model itself; the base knows only "float32 vector"."""
        return Vector(None, "float32")
