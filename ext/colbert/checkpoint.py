"""Read and write ColBERT checkpoints in the PyLate (sentence-transformers) folder layout.

A folder holds the transformer (at the root or in the subfolder ``modules.json`` names),
one or more ``N_Dense`` projection folders (``config.json`` + ``model.safetensors`` with
``linear.weight``), and ``config_sentence_transformers.json`` with PyLate's settings
(``query_prefix``, ``query_length``, ``skiplist_words``...). A plain transformers or
sentence-transformers checkpoint is read too: its pooling/normalize modules are ignored
and a new projection (seeded) is added.
"""

from __future__ import annotations

import contextlib
import dataclasses as dc
import importlib
import json
import logging
import os
import typing as t
from pathlib import Path

from pinnacle._deps import require
from pinnacle.errors import ConfigError
from pinnacle.ext.transformers._hf import read_json, save_pretrained

logger = logging.getLogger(__name__)

__all__ = ["Checkpoint", "load_checkpoint", "save_checkpoint", "DEFAULT_EMBEDDING_SIZE"]

DEFAULT_EMBEDDING_SIZE = 128
_IDENTITY = "torch.nn.modules.linear.Identity"


@dc.dataclass
class Checkpoint:
    """A loaded checkpoint: tokenizer, transformer, projection layers and PyLate settings."""

    tokenizer: t.Any
    transformer: t.Any
    dense: list[tuple[t.Any, str]]  # (torch.nn.Linear, activation import path)
    config: dict  # PyLate keys read from config_sentence_transformers.json
    projection: t.Any = None  # torch.nn.Sequential of the dense layers, built by load_checkpoint

    @property
    def embedding_size(self) -> int:
        return int(self.dense[-1][0].out_features)


def _torch() -> t.Any:
    return require("torch", extra="colbert")


@contextlib.contextmanager
def _seeded(seed: int) -> t.Iterator[None]:
    """A context in which torch's global RNG is seeded; its state is restored afterwards."""
    torch = _torch()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _activation(path: str) -> t.Any:
    if not path.startswith("torch."):
        raise ConfigError(
            f"ColBERT: the projection's activation {path!r} is not a torch module; only torch.* activations are "
            "loaded (no code from the checkpoint is imported)."
        )
    module_name, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)()
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"ColBERT: cannot import the projection's activation {path!r}: {exc}") from exc


def _load_dense(folder: str) -> tuple[t.Any, str]:
    torch = _torch()
    config = read_json(folder, "config.json")
    if config is None:
        raise ConfigError(f"ColBERT: projection folder {folder} has no config.json.")
    linear = torch.nn.Linear(int(config["in_features"]), int(config["out_features"]), bias=bool(config.get("bias", True)))
    weights = Path(folder) / "model.safetensors"
    if weights.is_file():
        state = require("safetensors.torch", extra="colbert").load_file(str(weights))
    elif (Path(folder) / "pytorch_model.bin").is_file():
        state = torch.load(Path(folder) / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise ConfigError(f"ColBERT: projection folder {folder} has no model.safetensors.")
    if config.get("use_residual"):
        raise ConfigError(f"ColBERT: projection {folder} uses a residual connection, which is not supported.")
    linear.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("linear.")})
    return linear, config.get("activation_function") or _IDENTITY


def _new_dense(in_features: int, out_features: int, bias: bool, seed: int) -> tuple[t.Any, str]:
    torch = _torch()
    with _seeded(seed):
        linear = torch.nn.Linear(in_features, out_features, bias=bias)
    return linear, _IDENTITY


def load_checkpoint(
    source: str,
    *,
    embedding_size: t.Optional[int],
    bias: bool,
    seed: int,
    prefixes: t.Sequence[str],
    model_kwargs: dict,
    tokenizer_kwargs: dict,
    config_kwargs: dict,
    trust_remote_code: bool,
) -> Checkpoint:
    """Load ``source`` (a folder or a cached hub name); add the projection and prefix tokens it lacks."""
    torch = _torch()
    transformers = require("transformers", extra="colbert")
    modules = read_json(source, "modules.json") or []
    root = source
    dense_paths = []
    for module in modules:
        kind = str(module.get("type", ""))
        if kind.endswith("Transformer"):
            root = os.path.join(source, module["path"]) if module.get("path") else source
        elif kind.endswith("Dense"):
            dense_paths.append(os.path.join(source, module["path"]))
        else:
            logger.debug("ColBERT %s: ignoring module %s (%s)", source, module.get("path"), kind)
    config = read_json(source, "config_sentence_transformers.json") or {}
    shared = {"trust_remote_code": trust_remote_code}
    tokenizer = transformers.AutoTokenizer.from_pretrained(root, **shared, **tokenizer_kwargs)
    load_kwargs = {**shared, **model_kwargs}
    if config_kwargs:
        load_kwargs["config"] = transformers.AutoConfig.from_pretrained(root, **shared, **config_kwargs)
    transformer = transformers.AutoModel.from_pretrained(root, **load_kwargs)
    dense = [_load_dense(p) for p in dense_paths]
    hidden = int(transformer.config.hidden_size)
    if not dense:
        size = embedding_size or DEFAULT_EMBEDDING_SIZE
        logger.info("ColBERT %s: no projection; adding a seeded one (%d -> %d)", source, hidden, size)
        dense.append(_new_dense(hidden, size, bias, seed))
    elif embedding_size is not None and dense[-1][0].out_features != embedding_size:
        logger.warning(
            "ColBERT %s: the projection gives %d dims; adding a seeded layer to %d",
            source, dense[-1][0].out_features, embedding_size,
        )
        dense.append(_new_dense(dense[-1][0].out_features, embedding_size, bias, seed + 1))
    _add_prefix_tokens(tokenizer, transformer, [p for p in prefixes if p], seed)
    if tokenizer.mask_token is not None:  # query expansion pads with [MASK], as PyLate does
        tokenizer.pad_token = tokenizer.mask_token
    elif tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    elif tokenizer.pad_token is None:
        raise ConfigError(f"ColBERT {source}: the tokenizer has no mask, eos or pad token to pad queries with.")
    layers = []
    for linear, activation in dense:
        layers.extend([linear, _activation(activation)])
    checkpoint = Checkpoint(tokenizer, transformer, dense, config)
    checkpoint.projection = torch.nn.Sequential(*layers)
    return checkpoint


def _add_prefix_tokens(tokenizer: t.Any, transformer: t.Any, prefixes: list[str], seed: int) -> None:
    """Add prefix tokens the vocabulary lacks, with seeded new embedding rows."""
    missing = [p for p in prefixes if p not in tokenizer.get_vocab()]
    if not missing:
        return
    tokenizer.add_tokens(missing)
    rows = transformer.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        with _seeded(seed):
            transformer.resize_token_embeddings(len(tokenizer))


def save_checkpoint(checkpoint: Checkpoint, folder: str | os.PathLike, settings: dict) -> None:
    """Write ``checkpoint`` to ``folder`` in the PyLate layout; ``settings`` are PyLate's config keys."""
    torch = _torch()
    safetensors_torch = require("safetensors.torch", extra="colbert")
    transformers = require("transformers", extra="colbert")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_pretrained(checkpoint.tokenizer, folder)
    save_pretrained(checkpoint.transformer, folder)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]
    for i, (linear, activation) in enumerate(checkpoint.dense, start=1):
        sub = folder / f"{i}_Dense"
        sub.mkdir(exist_ok=True)
        config = {
            "in_features": linear.in_features,
            "out_features": linear.out_features,
            "bias": linear.bias is not None,
            "activation_function": activation,
        }
        _write_json(sub / "config.json", config)
        state = {f"linear.{k}": v.detach().to("cpu").contiguous() for k, v in linear.state_dict().items()}
        safetensors_torch.save_file(state, str(sub / "model.safetensors"))
        modules.append({"idx": i, "name": str(i), "path": sub.name, "type": "pylate.models.Dense.Dense"})
    _write_json(folder / "modules.json", modules)
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": settings["document_length"] - 1, "do_lower_case": False})
    config = {
        "__version__": {"transformers": transformers.__version__, "pytorch": torch.__version__},
        "model_type": "ColBERT",
        "prompts": {"query": "", "document": ""},
        "default_prompt_name": None,
        "similarity_fn_name": "MaxSim",
        **settings,
    }
    _write_json(folder / "config_sentence_transformers.json", config)


def _write_json(path: Path, content: t.Any) -> None:
    with open(path, "w", encoding="utf8") as fh:
        json.dump(content, fh, indent=2)
