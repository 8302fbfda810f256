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
FP16_ATOL = 5e-3  # max |p_fp16 - p_fp32| allowed for a head stored in float16


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


def to_fp16(model: CafeHead, image_size: int, out: Path) -> float:
    """Rewrite the exported fp32 graph at `out` with float16 weights; return the max |Δp| against the fp32
    graph on standardised-scale random features (raises above FP16_ATOL)."""
    from cafe_models.onnx_fp16 import store_fp16

    g = torch.Generator().manual_seed(1)
    image = torch.randn(64, 3, image_size, image_size, generator=g).numpy()
    mean = model.feature_mean if model.standardised else torch.zeros(model.feature_dim)
    std = model.feature_std if model.standardised else torch.ones(model.feature_dim)
    features = (mean + std * torch.randn(64, model.feature_dim, generator=g)).clamp_min(0).numpy()
    feeds = {"image": image, "features": features}
    ref = open_session(out, 1).run(["probabilities"], feeds)[0]
    half = store_fp16(onnx.load(str(out)))
    onnx.checker.check_model(half)
    onnx.save(half, str(out))
    got = open_session(out, 1).run(["probabilities"], feeds)[0]
    diff = float(np.abs(got - ref).max())
    if diff > FP16_ATOL:
        raise RuntimeError(f"{out}: float16 weights change the probabilities by {diff} (> {FP16_ATOL})")
    return diff


def portable_specs(specs: str) -> str:
    """The training/selection sets as the manifest records them: `layout:<folder or file name>[@part]`, so a
    shipped manifest names the data without the paths of the machine it was trained on."""
    out = []
    for spec in str(specs).split(" + "):
        layout, _, rest = spec.partition(":")
        path, at, part = rest.rpartition("@") if "@" in rest else (rest, "", "")
        name = Path(path).name if Path(path).name not in ("crops.csv", "label.csv", "labels.csv") else \
            f"{Path(path).parent.name}/{Path(path).name}"
        out.append(f"{layout}:{name}{at}{part}")
    return " + ".join(out)


def _selection(config: dict) -> str:
    if config.get("select", "accuracy") == "balanced":
        return "mean over the valid domains of (accuracy + macro recall) / 2"
    return "mean accuracy over the valid domains"


def export_head(cfg: ExportConfig) -> dict:
    model, meta = load_head(cfg.checkpoint)
    out = Path(cfg.out)
    diff = export_onnx(model, meta["image_size"], out, cfg.opset)
    fp16_diff = to_fp16(model, meta["image_size"], out) if cfg.fp16 else None
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
        "weights": "float16" if cfg.fp16 else "float32",
        "training": {"epoch": meta["epoch"], "valid_accuracy_pytorch": meta["valid_accuracy"],
                     "train": portable_specs(meta["config"]["train"]), "valid": portable_specs(meta["config"]["valid"]),
                     **({"protocol": meta["protocol"], "selection": _selection(meta["config"])}
                        if "protocol" in meta else {}),
                     **({"targets": "FERPlus vote distributions (other sets: one-hot)"}
                        if meta["config"].get("soft_labels") else {})},
    }
    source = (f"trained by cafe-stream's trainer (variant {meta['variant']}, mask from {model.mask_source}, "
              f"mask input {meta['image_size']}px, "
              f"encoder {enc['file']}); see models/MODEL_CARD.md")
    manifest = write_manifest(out, "head", cfg.name, source, inputs, output, extra)
    result = {"onnx": str(out), "manifest": str(manifest), "parity_max_abs_diff": diff}
    if fp16_diff is not None:
        result["fp16_max_abs_diff"] = fp16_diff
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
