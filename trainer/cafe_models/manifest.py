"""Writes the `cafe-stream-model/1` sidecar (`X.onnx.json`) that the TypeScript model stage reads.

The format is documented in docs/models.md; this module is the only place the trainer produces it, so the
field names live here once.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import onnx

FORMAT = "cafe-stream-model/1"
ROLES = ("encoder", "head")

_IMAGE_KEYS = ("name", "layout", "height", "width", "color", "mean", "std", "resize")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def onnx_opset(path: str | Path) -> int:
    # The default ("ai.onnx") domain's version is the opset the runtime has to support.
    model = onnx.load(str(path), load_external_data=False)
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise ValueError(f"{path}: no default-domain opset import")


def image_input(
    *,
    name: str = "image",
    layout: str = "NCHW",
    size: int | tuple[int, int] = 224,
    color: str = "rgb",
    mean: tuple[float, float, float] | list[float] = (0.0, 0.0, 0.0),
    std: tuple[float, float, float] | list[float] = (1.0, 1.0, 1.0),
    resize: str = "bilinear",
) -> dict[str, Any]:
    """The `inputs.image` block, with the checks the TypeScript loader would otherwise fail on later."""
    height, width = (size, size) if isinstance(size, int) else size
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"layout must be NCHW or NHWC, got {layout!r}")
    if color not in ("rgb", "gray"):
        raise ValueError(f"color must be rgb or gray, got {color!r}")
    if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
        raise ValueError(f"mean/std must be 3 values with std > 0, got {mean!r} / {std!r}")
    return {
        "name": name,
        "layout": layout,
        "height": int(height),
        "width": int(width),
        "color": color,
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "resize": resize,
    }


def write_manifest(
    onnx_path: str | Path,
    role: str,
    name: str,
    source: str,
    inputs: Mapping[str, Any],
    output: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write `<onnx_path>.json` next to the model and return its path.

    `inputs` is the manifest's `inputs` object (at least `image`, see `image_input`); `output` its `output`
    object. `extra` adds top-level keys such as `encoder` and `metrics` for a head. The sha256 and opset are
    read from the ONNX file itself, so the file must be final when this is called.
    """
    onnx_path = Path(onnx_path)
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    if not onnx_path.is_file():
        raise FileNotFoundError(f"{onnx_path}: ONNX file not found")
    image = inputs.get("image")
    if not isinstance(image, Mapping):
        raise ValueError("inputs must contain an 'image' object")
    missing = [k for k in _IMAGE_KEYS if k not in image]
    if missing:
        raise ValueError(f"inputs.image lacks {missing}")
    if "name" not in output:
        raise ValueError("output must have a 'name'")

    manifest: dict[str, Any] = {
        "format": FORMAT,
        "role": role,
        "name": name,
        "file": onnx_path.name,
        "sha256": sha256_file(onnx_path),
        "opset": onnx_opset(onnx_path),
        "source": source,
        "inputs": dict(inputs),
        "output": dict(output),
    }
    for key, value in (extra or {}).items():
        if key in manifest:
            raise ValueError(f"extra key {key!r} would overwrite a required manifest field")
        manifest[key] = value

    out = onnx_path.with_name(onnx_path.name + ".json")
    out.write_text(json.dumps(manifest, indent=2) + "\n")
    return out
