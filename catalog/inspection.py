"""Reading what a model is from its folder: config.json and the headers of its safetensors files.

Pure functions of the files, no database: the services store what they return. Nothing here reads the
weights themselves. A safetensors file is ``<8-byte little-endian header length><JSON header><tensor bytes>``;
its header maps each tensor name to ``{"dtype", "shape", "data_offsets"}`` (plus an optional
``"__metadata__"`` entry), so the exact parameter count is the sum of the products of the shapes, read from
a few kilobytes of each file however large the file is.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog.choices import ModelFormat
from catalog.constants import MAX_SAFETENSORS_HEADER_BYTES
from catalog.sizing import estimate_parameter_count

CONFIG_FILE = "config.json"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
_SHARD = re.compile(r"^(?P<stem>.+)-(?P<index>\d+)-of-(?P<total>\d+)\.safetensors$")
# config.json keys that name the longest context a model was trained for, by how common they are.
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "model_max_length")
# Files ending in .bin that are not weights.
_NOT_WEIGHTS = {"training_args.bin", "optimizer.bin", "scheduler.bin"}
# safetensors dtype names → the names config.json (and the sizing advisor) use.
_SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I8": "int8"}


class InspectionError(ValueError):
    """The folder is not a model the platform can serve; the message says why."""


@dataclass(frozen=True)
class SafetensorsHeader:
    parameter_count: int
    dtypes: Counter  # tensor dtype → parameters stored in it


@dataclass(frozen=True)
class ModelInspection:
    format: str
    config: dict[str, Any]
    architecture: str = ""
    dtype: str = ""
    context_length: int | None = None
    parameter_count: int | None = None
    parameter_count_exact: bool = False
    quantized: bool = False
    notes: list[str] = field(default_factory=list)


def weights_format(paths: Iterable[str]) -> str:
    """safetensors when any top-level ``*.safetensors`` file is present, else PyTorch ``.bin``."""
    top_level = [path for path in paths if "/" not in path]
    return ModelFormat.SAFETENSORS if any(p.endswith(".safetensors") for p in top_level) else ModelFormat.PYTORCH


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise InspectionError("config.json is missing")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InspectionError(f"config.json is not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise InspectionError("config.json must hold a JSON object")
    return config


def read_safetensors_header(path: Path) -> SafetensorsHeader:
    """Count the parameters of one safetensors file from its header, checking that the file is long enough
    to hold the tensors the header describes (a truncated upload fails here, not when a task loads it)."""
    name = path.name
    size = path.stat().st_size
    with path.open("rb") as stream:
        prefix = stream.read(8)
        if len(prefix) < 8:
            raise InspectionError(f"{name} is not a safetensors file (shorter than its 8-byte header length)")
        (header_length,) = struct.unpack("<Q", prefix)
        if header_length > MAX_SAFETENSORS_HEADER_BYTES or 8 + header_length > size:
            raise InspectionError(f"{name} is not a safetensors file (its header length is {header_length} bytes)")
        try:
            header = json.loads(stream.read(header_length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InspectionError(f"{name} has an unreadable safetensors header ({exc})") from exc
    if not isinstance(header, dict):
        raise InspectionError(f"{name} has an unreadable safetensors header (not a JSON object)")

    parameters, data_end, dtypes = 0, 0, Counter()
    for tensor, spec in header.items():
        if tensor == "__metadata__":
            continue
        try:
            count = math.prod(int(dim) for dim in spec["shape"])
            data_end = max(data_end, int(spec["data_offsets"][1]))
            dtype = str(spec["dtype"])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise InspectionError(f"{name}: tensor '{tensor}' has no valid dtype, shape and data_offsets") from exc
        parameters += count
        dtypes[dtype] += count
    if 8 + header_length + data_end > size:
        raise InspectionError(
            f"{name} is truncated: its header describes {data_end} bytes of tensors, "
            f"the file holds {size - 8 - header_length}"
        )
    return SafetensorsHeader(parameter_count=parameters, dtypes=dtypes)


def missing_shards(folder: Path, weights: list[Path]) -> list[str]:
    """Shards of a sharded checkpoint that are not in the folder: those the index file lists, and the gaps
    in ``model-0000i-of-0000n.safetensors`` numbering."""
    present = {path.name for path in weights}
    expected: set[str] = set()
    index = folder / SAFETENSORS_INDEX_FILE
    if index.is_file():
        try:
            expected |= set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values())
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, TypeError) as exc:
            raise InspectionError(f"{SAFETENSORS_INDEX_FILE} is not valid JSON ({exc})") from exc
    for name in present:
        if shard := _SHARD.match(name):
            digits, total = len(shard["index"]), int(shard["total"])
            expected |= {f"{shard['stem']}-{i:0{digits}d}-of-{shard['total']}.safetensors" for i in range(1, total + 1)}
    return sorted(expected - present)


def _quantized_dtype(quantization: dict[str, Any]) -> str:
    """What one stored weight of a quantised model takes (GPTQ/AWQ ``bits``, bitsandbytes flags, FP8), so
    that sizing counts the packed size rather than the dtype the model computes in."""
    if quantization.get("bits") == 4 or quantization.get("load_in_4bit"):
        return "int4"
    if quantization.get("bits") == 8 or quantization.get("load_in_8bit"):
        return "int8"
    if str(quantization.get("quant_method", "")).lower() == "fp8":
        return "fp8"
    return ""


def _dtype(config: dict[str, Any], stored: Counter) -> str:
    quantization = config.get("quantization_config")
    if isinstance(quantization, dict) and (packed := _quantized_dtype(quantization)):
        return packed
    declared = config.get("torch_dtype") or config.get("dtype")
    if isinstance(declared, str) and declared:
        return declared.lower().removeprefix("torch.")
    if stored:
        most_common = stored.most_common(1)[0][0]
        return _SAFETENSORS_DTYPES.get(most_common, most_common.lower())
    return ""


def _context_length(config: dict[str, Any]) -> int | None:
    for key in _CONTEXT_KEYS:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def inspect_model_folder(folder: Path) -> ModelInspection:
    """What the platform needs to know to serve the model in ``folder``; InspectionError if it cannot.

    The parameter count is exact when safetensors headers are present. For a quantised model
    (``quantization_config`` in config.json) the stored tensors are packed (eight 4-bit weights in one
    int32), so the count is estimated from the architecture instead, as it is for ``.bin`` weights.
    """
    config = read_config(folder)
    safetensors = sorted(folder.glob("*.safetensors"))
    pytorch = sorted(path for path in folder.glob("*.bin") if path.name not in _NOT_WEIGHTS)
    if not safetensors and not pytorch:
        raise InspectionError("no weights (*.safetensors or *.bin) found")
    if missing := missing_shards(folder, safetensors):
        raise InspectionError(f"weights are incomplete: {', '.join(missing)} missing")

    headers = [read_safetensors_header(path) for path in safetensors]
    stored = sum((header.dtypes for header in headers), Counter())
    quantized = bool(config.get("quantization_config"))
    notes = []
    if headers and not quantized:
        parameter_count, exact = sum(header.parameter_count for header in headers), True
    else:
        parameter_count, exact = estimate_parameter_count(config), False
        notes.append("parameter count estimated from config.json" if parameter_count else "parameter count unknown")

    architectures = config.get("architectures")
    architecture = str(architectures[0]) if isinstance(architectures, list) and architectures else ""
    if not architecture:
        notes.append("config.json names no architecture")
    return ModelInspection(
        format=weights_format(path.name for path in safetensors + pytorch),
        config=config,
        architecture=architecture,
        dtype=_dtype(config, stored),
        context_length=_context_length(config),
        parameter_count=parameter_count,
        parameter_count_exact=exact,
        quantized=quantized,
        notes=notes,
    )
