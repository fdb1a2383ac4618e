"""The options of a Ray bulk job, validated in one table.

They come from the model's ``compute_kwargs``, overridden per call by
``db.backfill(..., **options)``. Actor options go to ``ActorClass.options(...)``; job
options shape the pool and the chunks.

Example:
    >>> opts = resolve_options({"num_cpus": 2, "num_actors": 3}, {})
    >>> opts.actor["num_cpus"], opts.num_actors
    (2, 3)
    >>> resolve_options({"num_cpu": 1}, {})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pinnacle.errors.ConfigError: Unknown Ray option 'num_cpu'; valid ones are [...]. Set them...
"""

from __future__ import annotations

import dataclasses as dc
import numbers
import typing as t

from pinnacle.errors import ConfigError

__all__ = ["Option", "OPTIONS", "JobOptions", "resolve_options"]


@dc.dataclass(frozen=True)
class Option:
    """One option: accepted types, a value rule (with its wording), default, and where it goes."""

    types: tuple[type, ...]
    rule: t.Optional[t.Callable[[t.Any], bool]]
    wording: str
    default: t.Any
    actor: bool  # an argument of ``ActorClass.options``; otherwise a job option


def _number(v: t.Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and v >= 0


def _resources(v: t.Any) -> bool:
    return all(isinstance(k, str) and _number(n) for k, n in v.items())


OPTIONS: dict[str, Option] = {
    # -- actor options (Ray's names) --
    "num_cpus": Option((int, float), _number, "a number >= 0", 1, True),
    "num_gpus": Option((int, float), _number, "a number >= 0", 0, True),
    "memory": Option((int, float), lambda v: v > 0, "bytes, > 0", None, True),
    "resources": Option((dict,), _resources, "a dict of resource name -> amount", None, True),
    "accelerator_type": Option((str,), None, "a Ray accelerator type, e.g. 'A100'", None, True),
    "runtime_env": Option((dict,), None, "a Ray runtime_env dict", None, True),
    "max_restarts": Option((int,), lambda v: v >= -1, "an int >= -1 (-1: unlimited)", 3, True),
    "max_task_retries": Option((int,), lambda v: v >= -1, "an int >= -1 (-1: unlimited)", 3, True),
    "scheduling_strategy": Option((str,), lambda v: v in ("SPREAD", "DEFAULT"), "'SPREAD' or 'DEFAULT'", "SPREAD", True),
    # -- job options --
    "num_actors": Option((int,), lambda v: v >= 1, "an int >= 1 (default: fill the cluster)", None, False),
    "chunk_rows": Option((int,), lambda v: v >= 1, "an int >= 1", 500, False),
    "max_in_flight": Option((int,), lambda v: v >= 1, "chunks queued per actor, an int >= 1", 2, False),
}


@dc.dataclass
class JobOptions:
    """Validated options: ``actor`` for ``.options(...)``, the rest for the pool."""

    actor: dict[str, t.Any]
    num_actors: t.Optional[int]
    chunk_rows: int
    max_in_flight: int


def resolve_options(compute_kwargs: t.Mapping[str, t.Any], overrides: t.Mapping[str, t.Any], owner: str = "") -> JobOptions:
    """Merge ``overrides`` over ``compute_kwargs``, check every value, fill defaults.

    Raises:
        ConfigError: an unknown key (the message lists the valid ones) or a bad value.
    """
    where = f" ({owner})" if owner else ""
    merged = {**dict(compute_kwargs or {}), **dict(overrides or {})}
    values: dict[str, t.Any] = {}
    for key, value in merged.items():
        option = OPTIONS.get(key)
        if option is None:
            raise ConfigError(
                f"Unknown Ray option {key!r}{where}; valid ones are {sorted(OPTIONS)}. "
                "Set them in the model's compute_kwargs or pass them to db.backfill(...)."
            )
        if value is None:
            continue
        ok = isinstance(value, option.types) and not isinstance(value, bool)
        if ok and option.rule is not None:
            ok = bool(option.rule(value))
        if not ok:
            raise ConfigError(f"Ray option {key}={value!r}{where} is not valid: it must be {option.wording}.")
        values[key] = value
    actor = {k: values.get(k, o.default) for k, o in OPTIONS.items() if o.actor}
    actor = {k: v for k, v in actor.items() if v is not None}
    return JobOptions(
        actor=actor,
        num_actors=values.get("num_actors"),
        chunk_rows=values.get("chunk_rows", OPTIONS["chunk_rows"].default),
        max_in_flight=values.get("max_in_flight", OPTIONS["max_in_flight"].default),
    )
