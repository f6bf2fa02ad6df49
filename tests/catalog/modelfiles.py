"""Small model folders built on the fly: a config.json and safetensors files written by hand (the format is
an 8-byte little-endian header length, a JSON header, then the raw tensor bytes), plus archives of them."""

from __future__ import annotations

import hashlib
import io
import json
import math
import struct
import tarfile
import zipfile

DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "I8": 1, "I32": 4}

TINY_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "vocab_size": 100,
    "max_position_embeddings": 2048,
    "torch_dtype": "bfloat16",
}
# name → (dtype, shape); 6400 + 4096 + 64 + 6400 parameters.
TINY_TENSORS = {
    "model.embed_tokens.weight": ("BF16", [100, 64]),
    "model.layers.0.self_attn.q_proj.weight": ("BF16", [64, 64]),
    "model.norm.weight": ("BF16", [64]),
    "lm_head.weight": ("BF16", [100, 64]),
}
TINY_PARAMETERS = 16_960


def safetensors_header(tensors: dict[str, tuple[str, list[int]]], metadata: dict | None = None) -> tuple[bytes, int]:
    """The length prefix and JSON header of a safetensors file, and how many tensor bytes follow them."""
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * DTYPE_BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = metadata or {"format": "pt"}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw, offset


def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]], metadata: dict | None = None) -> bytes:
    header, data_size = safetensors_header(tensors, metadata)
    return header + bytes(data_size)


def tiny_model_files(*, config: dict | None = None, sharded: bool = False) -> dict[str, bytes]:
    """``{relative path: content}`` of a tiny Llama in Hugging Face layout."""
    files = {
        "config.json": json.dumps(config or TINY_CONFIG).encode(),
        "tokenizer.json": b'{"version": "1.0"}',
        "generation_config.json": b'{"do_sample": true}',
    }
    if not sharded:
        files["model.safetensors"] = safetensors_bytes(TINY_TENSORS)
        return files
    names = list(TINY_TENSORS)
    shards = {"model-00001-of-00002.safetensors": names[:2], "model-00002-of-00002.safetensors": names[2:]}
    for shard, tensors in shards.items():
        files[shard] = safetensors_bytes({name: TINY_TENSORS[name] for name in tensors})
    weight_map = {name: shard for shard, tensors in shards.items() for name in tensors}
    files["model.safetensors.index.json"] = json.dumps({"weight_map": weight_map}).encode()
    return files


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def folder_digest(files: dict[str, bytes]) -> str:
    """The documented model checksum, recomputed independently of the code under test."""
    return sha256("".join(f"{path}\t{sha256(files[path])}\n" for path in sorted(files)).encode())


def tar_bytes(files: dict[str, bytes], *, compression: str = "gz", links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}" if compression else "w") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return buffer.getvalue()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()
