"""`trainer evaluate`: run the exported ONNX models (encoder + head, preprocessing from their manifests) on
labelled sets and report accuracy, per-class recall, macro average and the confusion matrix.

Images are used as given: each one is the crop, resized straight to each model's input. No face detection
runs here (it lives in the TypeScript pipeline), so a folder of uncropped photos is scored on whole images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cafe_models.classes import CLASSES, NUM_CLASSES
from cafe_models.datasets import FaceSet, load_set, read_image
from cafe_models.manifest import sha256_file
from cafe_models.transforms import ImageSpec, preprocess

from .features import OnnxModel, open_session
from .params import EvalConfig


@dataclass
class Deployed:
    encoder: OnnxModel
    head: OnnxModel
    head_manifest_path: Path

    def predict(self, images: list[np.ndarray]) -> np.ndarray:
        """RGB uint8 crops -> probabilities (N, 7) in CLASSES order."""
        enc_in = self.encoder.manifest["inputs"]["image"]["name"]
        feats = self.encoder.session.run([self.encoder.manifest["output"]["name"]],
                                         {enc_in: preprocess(images, self.encoder.spec)})[0]
        head_inputs = self.head.manifest["inputs"]
        return self.head.session.run([self.head.manifest["output"]["name"]], {
            head_inputs["image"]["name"]: preprocess(images, self.head.spec),
            head_inputs["features"]["name"]: feats.astype(np.float32),
        })[0]


def find_head_manifest(models: Path) -> Path:
    if not models.is_dir():
        raise FileNotFoundError(f"{models}: models folder not found")
    heads = [p for p in sorted(models.glob("*.onnx.json")) if json.loads(p.read_text()).get("role") == "head"]
    if len(heads) != 1:
        raise ValueError(f"{models}: expected exactly one head manifest, found {[p.name for p in heads]}; "
                         "pass --head")
    return heads[0]


def _checked(onnx_path: Path, manifest: dict, what: str) -> str:
    if not onnx_path.is_file():
        raise FileNotFoundError(f"{onnx_path}: {what} ONNX not found")
    sha = sha256_file(onnx_path)
    if manifest.get("sha256") != sha:
        raise ValueError(f"{onnx_path}: sha256 {sha} does not match its manifest ({manifest.get('sha256')})")
    return sha


def load_deployed(models: Path, head: Path | None = None, threads: int = 2) -> Deployed:
    """The head manifest in `models` (or `head`) and the encoder it names, both sha256-checked."""
    head_manifest_path = Path(head) if head else find_head_manifest(Path(models))
    hm = json.loads(head_manifest_path.read_text())
    if hm.get("role") != "head":
        raise ValueError(f"{head_manifest_path}: not a head manifest")
    base = head_manifest_path.parent
    head_path = base / hm["file"]
    head_sha = _checked(head_path, hm, "head")
    enc_info = hm["encoder"]
    enc_path = base / enc_info["file"]
    em_path = Path(str(enc_path) + ".json")
    if not em_path.is_file():
        raise FileNotFoundError(f"{em_path}: encoder manifest not found")
    em = json.loads(em_path.read_text())
    enc_sha = _checked(enc_path, em, "encoder")
    if enc_info.get("sha256") != enc_sha:
        raise ValueError(f"{head_manifest_path}: trained with encoder sha256 {enc_info.get('sha256')}, "
                         f"but {enc_path} is {enc_sha}")
    encoder = OnnxModel(enc_path, em, open_session(enc_path, threads),
                        ImageSpec.from_manifest(em["inputs"]["image"], enc_info.get("color")), enc_sha)
    head_model = OnnxModel(head_path, hm, open_session(head_path, threads),
                           ImageSpec.from_manifest(hm["inputs"]["image"]), head_sha)
    return Deployed(encoder, head_model, head_manifest_path)


def metrics(labels: np.ndarray, pred: np.ndarray) -> dict:
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)  # rows: true, columns: predicted
    np.add.at(confusion, (labels, pred), 1)
    support = confusion.sum(1)
    recall = {c: (float(confusion[i, i] / support[i]) if support[i] else None) for i, c in enumerate(CLASSES)}
    present = [r for r in recall.values() if r is not None]
    return {
        "n": int(len(labels)),
        "accuracy": float((labels == pred).mean()) if len(labels) else 0.0,
        "macro_recall": float(np.mean(present)) if present else 0.0,
        "per_class_recall": recall,
        "support": {c: int(s) for c, s in zip(CLASSES, support)},
        "confusion": confusion.tolist(),
    }


def evaluate_set(model: Deployed, faceset: FaceSet, batch_size: int = 16, bgr: bool = False,
                 progress: bool = True) -> dict:
    preds = []
    for s in tqdm(range(0, len(faceset), batch_size), desc=faceset.name, unit="batch", disable=not progress,
                  mininterval=5):
        imgs = [read_image(p, b) for p, b in zip(faceset.paths[s:s + batch_size], faceset.boxes[s:s + batch_size])]
        if bgr:
            imgs = [np.ascontiguousarray(im[:, :, ::-1]) for im in imgs]
        preds.append(model.predict(imgs).argmax(1))
    return metrics(faceset.labels, np.concatenate(preds))


def evaluate(cfg: EvalConfig, progress: bool = True) -> dict:
    torch.set_num_threads(cfg.threads)
    model = load_deployed(cfg.models, cfg.head, cfg.threads)
    report = {"head": str(model.head_manifest_path), "head_sha256": model.head.sha256,
              "encoder_sha256": model.encoder.sha256, "classes": list(CLASSES), "sets": {}}
    for spec in cfg.sets:
        faceset = load_set(spec, rafdb_split="test", ferplus_protocol=cfg.ferplus_protocol)
        report["sets"][spec] = evaluate_set(model, faceset, cfg.batch_size, cfg.bgr, progress and not cfg.json)
    return report


def format_report(report: dict) -> str:
    short = [c[:5] for c in CLASSES]
    lines = [f"head {report['head']}"]
    for spec, m in report["sets"].items():
        lines.append(f"\n{spec}: n={m['n']} accuracy {m['accuracy']:.4f}  macro recall {m['macro_recall']:.4f}")
        lines.append("  recall  " + "  ".join(
            f"{c[:5]} {'-' if r is None else f'{r:.3f}'}" for c, r in m["per_class_recall"].items()))
        lines.append("  confusion (rows true, columns predicted)")
        lines.append("  " + " " * 10 + "".join(f"{s:>7}" for s in short))
        for c, row in zip(CLASSES, m["confusion"]):
            lines.append(f"  {c:<10}" + "".join(f"{v:>7}" for v in row))
    return "\n".join(lines)
