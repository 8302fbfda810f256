"""`trainer export-head`: a trained head checkpoint -> ONNX (image, features) -> probabilities, checked
against PyTorch in ONNX Runtime, with its manifest (cafe-stream-model/1) beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch

from cafe_models.cafe import CafeHead, ExportHead
from cafe_models.classes import CLASSES
from cafe_models.manifest import image_input, write_manifest
from cafe_models.transforms import IMAGENET_MEAN, IMAGENET_STD

from .features import open_session
from .params import EvalConfig, ExportConfig

PARITY_ATOL = 1e-4


def load_head(checkpoint: Path) -> tuple[CafeHead, dict]:
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"{checkpoint}: head checkpoint not found")
    ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
    meta = ck["meta"]
    model = CafeHead.from_meta(meta)
    model.load_state_dict(ck["model"])
    return model.eval(), {**meta, "valid_accuracy": ck.get("valid_accuracy"), "epoch": ck.get("epoch")}


def export_onnx(model: CafeHead, image_size: int, out: Path, opset: int = 17) -> float:
    """Write the ONNX graph and return the max |ORT - PyTorch| on a random batch (raises above PARITY_ATOL)."""
    wrapper = ExportHead(model).eval()
    g = torch.Generator().manual_seed(0)
    image = torch.randn(3, 3, image_size, image_size, generator=g)
    features = torch.rand(3, model.feature_dim, generator=g) * 3
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        wrapper, (image, features), str(out), input_names=["image", "features"], output_names=["probabilities"],
        dynamic_axes={"image": {0: "N"}, "features": {0: "N"}, "probabilities": {0: "N"}},
        opset_version=opset, dynamo=False)
    onnx.checker.check_model(onnx.load(str(out)))
    with torch.no_grad():
        ref = wrapper(image, features).numpy()
    got = open_session(out, 1).run(["probabilities"], {"image": image.numpy(), "features": features.numpy()})[0]
    diff = float(np.abs(got - ref).max())
    if diff > PARITY_ATOL:
        raise RuntimeError(f"{out}: ONNX Runtime differs from PyTorch by {diff} (> {PARITY_ATOL})")
    return diff


def export_head(cfg: ExportConfig) -> dict:
    model, meta = load_head(cfg.checkpoint)
    out = Path(cfg.out)
    diff = export_onnx(model, meta["image_size"], out, cfg.opset)
    enc = meta["encoder"]
    inputs = {
        "image": image_input(name="image", layout="NCHW", size=meta["image_size"], color="gray",
                             mean=IMAGENET_MEAN, std=IMAGENET_STD, resize="bilinear"),
        "features": {"name": "features", "dim": meta["feature_dim"]},
    }
    output = {"name": "probabilities", "classes": list(CLASSES)}
    extra = {
        "encoder": {"file": enc["file"], "sha256": enc["sha256"], "color": enc["color"]},
        "variant": meta["variant"],
        "mask_source": model.mask_source,
        "standardised_features": model.standardised,
        "training": {"epoch": meta["epoch"], "valid_accuracy_pytorch": meta["valid_accuracy"],
                     "train": meta["config"]["train"], "valid": meta["config"]["valid"]},
    }
    source = (f"trained by cafe-stream's trainer (variant {meta['variant']}, mask from {model.mask_source}, "
              f"mask input {meta['image_size']}px, "
              f"encoder {enc['file']}); see models/MODEL_CARD.md")
    manifest = write_manifest(out, "head", cfg.name, source, inputs, output, extra)
    result = {"onnx": str(out), "manifest": str(manifest), "parity_max_abs_diff": diff}
    if cfg.valid:
        result["metrics"] = add_metrics(manifest, cfg.valid)
    return result


def add_metrics(manifest: Path, sets: list[str]) -> dict:
    """Evaluate the exported head (with its encoder) on `sets` and store the accuracies in the manifest.
    Only the manifest changes, so the ONNX sha256 stays valid."""
    import json

    from .evaluate import evaluate

    report = evaluate(EvalConfig(models=manifest.parent, sets=sets, head=manifest), progress=False)
    metrics = {}
    for spec, m in report["sets"].items():
        key = spec.split(":", 1)[1].rstrip("/").split("/")[-1].lower()
        metrics[f"{key}_accuracy"] = round(m["accuracy"], 4)
        metrics[f"{key}_macro_recall"] = round(m["macro_recall"], 4)
        if spec.startswith("ferplus:") and "valid" in key:
            metrics["ferplus_valid_accuracy"] = round(m["accuracy"], 4)
    data = json.loads(manifest.read_text())
    data["metrics"] = metrics
    manifest.write_text(json.dumps(data, indent=2) + "\n")
    return metrics
