"""`trainer train-xd`: a feature-mask head trained for faces unlike its training set (cross-domain protocol).

What differs from `train` (which stays the paper's single-set recipe with an image mask network):
- several training sets at once (e.g. FER+ Train and the train part of a performer-split Taiwanese set), each
  drawn with a weight so a set of 600 photos is not drowned by 27,000 FER images;
- several selection sets, each a domain: the checkpoint kept is the one with the best **mean accuracy over
  the selection domains**, never FER+ Valid alone;
- encoder features of several cached views per image (views.py): the clean crop, its mirror and seeded
  augmented crops (scale, shift, rotation, blur, JPEG, gamma, contrast, noise); a step draws one view per
  sample;
- logit adjustment (Menon et al., 2021): the loss sees logits + tau * log(prior) with the training label
  prior, so the head is trained for balanced accuracy and FER+'s neutral-heavy prior does not become the
  answer for every unfamiliar face; the deployed head predicts from the plain logits;
- no image network: the mask reads the fixed features (mask source `features`); heads are small enough to
  ship in float16.

Variants: cafe (sigmoid mask + separation + diverse loss), cafe-nosep, cafe-nosigmoid, encoder-fc. The
checkpoint format is `train`'s, so `export-head` exports it unchanged.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cafe_models.cafe import CafeHead
from cafe_models.classes import CLASSES, NUM_CLASSES
from cafe_models.datasets import FaceSet, group_split, load_set, split_part
from cafe_models.facecrop import Jitter
from cafe_models.losses import channel_drop_mask, diversity_loss, separation_loss

from .evaluate import metrics
from .features import OnnxModel, encode, open_encoder
from .views import render, view_features

NO_GROUP = "(no subject id)"
XD_VARIANTS = ("cafe", "cafe-nosep", "cafe-nosigmoid", "encoder-fc")
SELECT_CRITERIA = ("accuracy", "balanced")


def selection_score(m: dict, criterion: str) -> float:
    """One domain's share of the selection score: plain accuracy, or its mean with macro recall so that a
    checkpoint which buys accuracy by never saying the rare classes is not the one kept."""
    return m["accuracy"] if criterion == "accuracy" else (m["accuracy"] + m["macro_recall"]) / 2


@dataclass
class XdConfig:
    train: list[str]                 # layout:path[@part] ...
    valid: list[str]                 # selection domains (never test parts)
    encoder: Path
    out: Path
    cache_dir: Path
    variant: str = "cafe"
    train_weights: list[float] = field(default_factory=list)  # share of each step's samples per train set
    views: int = 2                   # cached views per training image (0 clean, 1 mirror, 2.. augmented)
    domain_views: int | None = None  # views for the non-FER sets (small, so more views are cheap)
    epochs: int = 30                 # an epoch = as many samples as the largest training set
    batch_size: int = 64
    lr: float = 2e-4
    weight_decay: float = 1e-4
    gamma: float = 0.9
    w_sep: float = 1.5
    w_div: float = 5.0
    logit_adjust: float = 1.0        # tau; 0 = plain cross-entropy
    label_smoothing: float = 0.0
    seed: int = 3407
    # one thread: a head step is small, and on a loaded 2-core machine a second torch thread cost 4x in
    # synchronisation (measured: 125 vs 540 ms per step of the 1287-d CAFE head at batch 64)
    threads: int = 1
    progress: bool = True
    report: list[str] = field(default_factory=list)  # sets scored once, with the selected checkpoint, at the end
    encoder_parts: list[Path] = field(default_factory=list)  # per-branch encoders whose concat is `encoder`
    # FERPlus vote distributions as targets: a face 6 raters called neutral and 4 sad teaches "a little sad"
    # instead of "neutral", which is what subtle expressions on other cameras need
    soft_labels: bool = False
    select: str = "accuracy"         # accuracy | balanced: mean over domains of (accuracy + macro recall) / 2

    def validate(self) -> "XdConfig":
        if self.select not in SELECT_CRITERIA:
            raise ValueError(f"--select must be one of {', '.join(SELECT_CRITERIA)}, got {self.select!r}")
        if self.variant not in XD_VARIANTS:
            raise ValueError(f"--variant must be one of {', '.join(XD_VARIANTS)}, got {self.variant!r}")
        if not self.train or not self.valid:
            raise ValueError("need at least one --train and one --valid set")
        if self.train_weights and len(self.train_weights) != len(self.train):
            raise ValueError(f"--train-weights needs one weight per --train set ({len(self.train)}), "
                             f"got {len(self.train_weights)}")
        if any(w <= 0 for w in self.train_weights):
            raise ValueError("--train-weights must be > 0")
        if any(s.endswith("@test") for s in self.valid + self.train):
            raise ValueError("a @test part is for the final report only, never for training or selection")
        if self.views < 1 or (self.domain_views is not None and self.domain_views < 1):
            raise ValueError("--views must be >= 1")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or self.logit_adjust < 0:
            raise ValueError("need epochs >= 1, batch size >= 1, lr > 0, logit adjust >= 0")
        for e in [self.encoder, *self.encoder_parts]:
            if not Path(e).is_file():
                raise FileNotFoundError(f"{e}: encoder ONNX not found")
        return self


def _views_for(spec: str, cfg: XdConfig) -> int:
    return cfg.views if spec.startswith("ferplus:") or cfg.domain_views is None else cfg.domain_views


def check_parts(enc: OnnxModel, parts: list[OnnxModel], fs: FaceSet, n: int = 8, atol: float = 1e-4) -> float:
    """The encoder's features of the first n crops of `fs` must be the parts' features side by side: the head
    is trained on the parts' cached features and shipped with `enc`."""
    crops = [render(fs, i, 0, enc.spec.height, 0, Jitter()) for i in range(min(n, len(fs)))]
    whole = encode(enc, crops)
    joined = np.concatenate([encode(p, crops) for p in parts], axis=1)
    if whole.shape != joined.shape:
        raise ValueError(f"--encoder-parts give {joined.shape[1]} features, {enc.path.name} gives {whole.shape[1]}")
    err = float(np.abs(whole - joined).max())
    if err > atol:
        raise ValueError(f"--encoder-parts do not compute {enc.path.name}: max |difference| {err:.2e} > {atol}")
    return err


def load_features(specs: list[str], encs: list[OnnxModel], cfg: XdConfig,
                  views: bool) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(spec, features (N, V, D), labels, targets (N, 7)) per set, the encoders' features side by side. The
    targets are one-hot labels, or the vote distributions with `soft_labels` where the set has votes (FERPlus).
    A `@part` is cut from the whole set's cached features, so the train, val and test parts of one set share
    one cache."""
    out = []
    for spec in specs:
        base, part = split_part(spec)
        fs = load_set(base)
        feats = np.concatenate([view_features(fs, enc, cfg.cache_dir, _views_for(spec, cfg) if views else 1,
                                              seed=0, progress=cfg.progress) for enc in encs], axis=2)
        labels = fs.labels
        targets = np.eye(NUM_CLASSES, dtype=np.float32)[labels]
        if cfg.soft_labels and fs.soft is not None:
            targets = fs.soft.astype(np.float32)
        if part is not None:
            idx = group_split(fs.groups, part)
            feats, labels, targets = feats[idx], labels[idx], targets[idx]
        out.append((spec, feats, labels, targets))
    return out


@torch.no_grad()
def predict(model: CafeHead, feats: np.ndarray) -> np.ndarray:
    model.eval()
    logits, _ = model(torch.zeros(len(feats), 3, 1, 1), torch.from_numpy(feats))
    model.train()
    return logits.argmax(1).numpy()


def train_xd(cfg: XdConfig) -> dict:
    cfg.validate()
    torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    enc = open_encoder(cfg.encoder, "gray", cfg.threads)
    encs = [enc]
    if cfg.encoder_parts:
        encs = [open_encoder(p, "gray", cfg.threads) for p in cfg.encoder_parts]
        check_parts(enc, encs, load_set(split_part(cfg.valid[0])[0]))
    train_sets = load_features(cfg.train, encs, cfg, views=True)
    valid_sets = load_features(cfg.valid, encs, cfg, views=False)
    dim = train_sets[0][1].shape[2]
    weights = np.asarray(cfg.train_weights or [len(t[2]) for t in train_sets], dtype=np.float64)
    weights = weights / weights.sum()

    all_labels = np.concatenate([t[2] for t in train_sets])
    # the prior the sampler actually produces: each set's class frequencies mixed by its sampling weight
    prior = sum(w * t[3].mean(0) for w, t in zip(weights, train_sets))
    log_prior = torch.tensor(np.log(np.maximum(prior, 1e-6)), dtype=torch.float32)
    clean = torch.from_numpy(np.concatenate([t[1][:, 0] for t in train_sets]))

    head = CafeHead(dim, cfg.variant, mask_source="image" if cfg.variant == "encoder-fc" else "features",
                    standardised=True)
    head.set_feature_stats(clean)
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.gamma)
    steps = math.ceil(max(len(t[2]) for t in train_sets) / cfg.batch_size)
    meta = {**head.describe(), "feature_dim": dim, "image_size": 48,
            "encoder": {"file": enc.path.name, "sha256": enc.sha256, "color": "gray"},
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()} |
                      {"train": " + ".join(cfg.train), "valid": " + ".join(cfg.valid)},
            "protocol": "train-xd", "train_prior": prior.tolist()}
    rng = np.random.default_rng(cfg.seed)
    tensors = [(torch.from_numpy(f), torch.from_numpy(y), torch.from_numpy(q)) for _, f, y, q in train_sets]
    best, history, t0 = -1.0, [], time.perf_counter()
    for epoch in range(cfg.epochs):
        seen, correct, loss_sum = 0, 0, 0.0
        for step in range(steps):
            counts = rng.multinomial(cfg.batch_size, weights)
            xs, ys, qs = [], [], []
            for (f, y, q), k in zip(tensors, counts):
                if k == 0:
                    continue
                idx = torch.from_numpy(rng.integers(0, len(y), k))
                view = torch.from_numpy(rng.integers(0, f.shape[1], k))
                xs.append(f[idx, view])
                ys.append(y[idx])
                qs.append(q[idx])
            x, target, soft = torch.cat(xs), torch.cat(ys), torch.cat(qs)
            logits, fmask = head(torch.zeros(len(x), 3, 1, 1), x)
            adjusted = logits + cfg.logit_adjust * log_prior
            # hard labels keep the label-smoothing path bit-identical to earlier runs; the separation loss
            # below always groups channels by the hard label
            loss = F.cross_entropy(adjusted, soft if cfg.soft_labels else target, label_smoothing=cfg.label_smoothing)
            if head.uses_cafe_losses:  # CAFE's separation (with channel dropping) and channel-diverse losses
                drop = channel_drop_mask(dim, random.Random(cfg.seed * 100_003 + epoch * 10_007 + step))
                loss = loss + cfg.w_sep * separation_loss(fmask, target, drop) + cfg.w_div * diversity_loss(fmask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(target)
            correct += int((logits.argmax(1) == target).sum())
            loss_sum += loss.item() * len(target)
        sched.step()
        domains = {spec: metrics(y, predict(head, f[:, 0])) for spec, f, y, _ in valid_sets}
        score = float(np.mean([selection_score(m, cfg.select) for m in domains.values()]))
        improved = score > best
        if improved:
            best = score
            torch.save({"model": head.state_dict(), "meta": meta, "valid_accuracy": score, "epoch": epoch + 1,
                        "valid_domains": domains}, out / "best.pt")
        row = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / seen,
               "valid_mean_acc": score, "valid": {s: round(m["accuracy"], 4) for s, m in domains.items()},
               "valid_macro": {s: round(m["macro_recall"], 4) for s, m in domains.items()},
               "best": improved, "elapsed_s": round(time.perf_counter() - t0, 1)}
        history.append(row)
        with open(out / "log.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")
        if cfg.progress:
            per = " ".join(f"{s.split(':', 1)[1].rstrip('/').split('/')[-1]} {m['accuracy']:.3f}"
                           for s, m in domains.items())
            print(f"epoch {epoch + 1}: train acc {correct / seen:.3f} | valid mean {score:.4f} ({per})"
                  f"{' (best)' if improved else ''}", flush=True)
    reports = {}
    if cfg.report:  # scored once with the selected checkpoint; they take no part in training or selection
        head.load_state_dict(torch.load(out / "best.pt", map_location="cpu", weights_only=False)["model"])
        for spec, f, y, _ in load_features(cfg.report, encs, cfg, views=False):
            reports[spec] = metrics(y, predict(head, f[:, 0]))
        (out / "report.json").write_text(json.dumps(reports, indent=2) + "\n")
    return {"best_valid_mean_acc": best, "best_checkpoint": str(out / "best.pt"),
            "report": {s: {"accuracy": round(m["accuracy"], 4), "macro_recall": round(m["macro_recall"], 4),
                           "n": m["n"]} for s, m in reports.items()},
            "best_epoch": max((r for r in history if r["best"]), key=lambda r: r["valid_mean_acc"])["epoch"],
            "train_prior": dict(zip(CLASSES, np.round(prior, 4).tolist()))}


def score_predictions(csv_path: Path, part: str | None) -> dict:
    """Metrics of the predictions a `cafe-stream evaluate --save-crops` run wrote into its crops.csv (the
    product path: detector, crop, models), restricted to one performer-disjoint part (the same split as
    `layout:path@part`), so a model trained on the train part is scored on people it never saw."""
    import csv

    from cafe_models.classes import class_from_name
    from cafe_models.datasets import DatasetError, group_split

    rows = list(csv.DictReader(open(csv_path, newline="")))
    if not rows or "predicted" not in rows[0]:
        raise DatasetError(f"{csv_path}: needs a `predicted` column (a crops.csv of cafe-stream evaluate)")
    missing = Path(csv_path).with_name("not-found.csv")  # images without a face: part of the split all the same
    if missing.is_file():
        rows += [{**r, "predicted": ""} for r in csv.DictReader(open(missing, newline=""))]
    rows = [r for r in rows if class_from_name(r["label"] or "") is not None]
    for r in rows:  # images whose name carries no person id are one group, as in the training CSVs
        r["group"] = r.get("group") or NO_GROUP
    if part is not None:
        rows = [rows[i] for i in group_split([r["group"] for r in rows], part)]
    found = [r for r in rows if r.get("predicted")]
    labels = np.array([class_from_name(r["label"]) for r in found])
    pred = np.array([class_from_name(r["predicted"]) for r in found])
    return {**metrics(labels, pred), "images": len(rows), "faces_not_found": len(rows) - len(found),
            "part": part or "all", "groups": len({r["group"] for r in rows})}
