"""Training loop: cached encoder features + on-the-fly augmented mask-network input, CAFE losses,
per-epoch selection on the validation set, resumable checkpoints."""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cafe_models.cafe import CafeHead
from cafe_models.datasets import FaceSet, load_set
from cafe_models.losses import cafe_loss, channel_drop_mask, cross_entropy
from cafe_models.transforms import TrainAugment, eval_transform

from .features import cached_features, load_gray_images, open_encoder
from .params import TrainConfig


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _step_seed(seed: int, epoch: int, step: int) -> int:
    # Every step's randomness comes from (seed, epoch, step), so a resumed run draws the same numbers.
    return (seed * 1_000_003 + epoch * 100_003 + step) % (2**63)


class Data:
    """One split in memory: grey uint8 images, cached features (plain + mirrored), targets."""

    def __init__(self, faceset: FaceSet, images: np.ndarray, plain: np.ndarray, flipped: np.ndarray | None,
                 soft: bool) -> None:
        self.faceset = faceset
        self.images = torch.from_numpy(images)
        self.plain = torch.from_numpy(plain)
        self.flipped = None if flipped is None else torch.from_numpy(flipped)
        self.labels = torch.from_numpy(faceset.labels)
        self.targets = (torch.from_numpy(faceset.soft) if soft and faceset.soft is not None else self.labels)

    def __len__(self) -> int:
        return len(self.labels)


def load_data(spec: str, cfg: TrainConfig, enc, split: str, soft: bool = False) -> Data:
    faceset = load_set(spec, rafdb_split=split, ferplus_protocol=cfg.ferplus_protocol)
    if soft and faceset.soft is None:
        raise ValueError(f"{spec}: --soft-labels needs vote distributions (FERPlus layout)")
    if cfg.limit and split == "train":
        faceset = faceset.subset(np.arange(min(cfg.limit, len(faceset))))
    mirrored = split == "train" and cfg.mirror_features
    feats = cached_features(faceset, enc, cfg.cache_dir, mirrored=mirrored, progress=cfg.progress)
    images = load_gray_images(faceset, cfg.image_size, progress=cfg.progress)
    return Data(faceset, images, feats.plain, feats.flipped, soft)


@torch.no_grad()
def evaluate_torch(model: CafeHead, data: Data, image_size: int, batch_size: int = 256) -> dict:
    """Accuracy of the FC prediction on un-augmented inputs (the reference's test())."""
    model.eval()
    preds = []
    for s in range(0, len(data), batch_size):
        x = eval_transform(data.images[s:s + batch_size], image_size) if model.uses_image else \
            torch.zeros(min(batch_size, len(data) - s), 3, 1, 1)
        logits, _ = model(x, data.plain[s:s + batch_size])
        preds.append(logits.argmax(1))
    pred = torch.cat(preds)
    model.train()
    return {"accuracy": float((pred == data.labels).float().mean())}


def build_model(cfg: TrainConfig, feature_dim: int, train_features: torch.Tensor | None = None) -> CafeHead:
    model = CafeHead(feature_dim, cfg.variant, mask_source=cfg.mask_source, standardised=cfg.standardise_features)
    if model.standardised:
        if train_features is None:
            raise ValueError("standardised features need the training set's features")
        model.set_feature_stats(train_features)
    if cfg.mask_checkpoint is not None:
        if not hasattr(model, "mask"):
            raise ValueError(f"--mask-checkpoint has no mask network to load into (variant {cfg.variant}, "
                             f"mask source {cfg.mask_source})")
        model.mask.load_msceleb(cfg.mask_checkpoint)
    if cfg.init_fc is not None:
        init_fc_from_encoder_fc(model, cfg.init_fc)
    if cfg.init_from is not None:
        init_from_run(model, cfg.init_from)
    return model


MASK_BRANCHES = ("proj", "feature_mask")  # the layers whose outputs sum to the mask logits M


def _zero(layer: torch.nn.Linear) -> None:
    layer.weight.zero_()
    layer.bias.zero_()


@torch.no_grad()
def _silence_mask(model: CafeHead) -> None:
    """Zero every layer that produces mask logits: M = 0, so sigmoid(M) = 0.5 (M = 1 without the sigmoid)."""
    layers = [getattr(model, n) for n in MASK_BRANCHES if hasattr(model, n)]
    for layer in layers:
        _zero(layer)
    if model.variant == "cafe-nosigmoid":
        layers[0].bias.fill_(1.0)


def _load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


@torch.no_grad()
def init_fc_from_encoder_fc(model: CafeHead, checkpoint: Path) -> None:
    """Start a CAFE variant from a trained encoder + FC head: the mask starts uniform (P = 0, so
    sigmoid(M) = 0.5, or M = 1 without the sigmoid) and the FC is rescaled so that the starting model
    predicts exactly what the encoder + FC head predicts. The mask network then learns to modulate it."""
    if not model.variant.startswith("cafe"):
        raise ValueError(f"--init-fc applies to the cafe variants, not {model.variant}")
    ck = _load_checkpoint(checkpoint)
    if ck["meta"]["variant"] != "encoder-fc" or ck["meta"]["feature_dim"] != model.feature_dim:
        raise ValueError(f"{checkpoint}: --init-fc needs an encoder-fc checkpoint with feature dim "
                         f"{model.feature_dim}")
    if ck["meta"].get("standardised", False) != model.standardised:
        raise ValueError(f"{checkpoint}: --init-fc needs a checkpoint with the same feature standardisation")
    _silence_mask(model)
    scale = 1.0 if model.variant == "cafe-nosigmoid" else 2.0  # undo sigmoid(0) = 0.5
    model.fc.weight.copy_(ck["model"]["fc.weight"] * scale)
    model.fc.bias.copy_(ck["model"]["fc.bias"])
    if model.standardised:
        model.feature_mean.copy_(ck["model"]["feature_mean"])
        model.feature_std.copy_(ck["model"]["feature_std"])


@torch.no_grad()
def init_from_run(model: CafeHead, checkpoint: Path) -> dict[str, list[str]]:
    """Warm start from another run of the same variant (e.g. mask source "features" -> "both"): every tensor
    whose name and shape match is copied; a mask branch the source lacks starts at zero, so the starting
    model predicts exactly what the source predicts; anything else keeps its fresh init."""
    ck = _load_checkpoint(checkpoint)
    meta = ck["meta"]
    if (meta["variant"], meta["feature_dim"], meta.get("standardised", False)) != \
            (model.variant, model.feature_dim, model.standardised):
        raise ValueError(f"{checkpoint}: --init-from needs a {model.variant} run with feature dim "
                         f"{model.feature_dim} and standardised={model.standardised}; it holds {meta['variant']}, "
                         f"{meta['feature_dim']}, {meta.get('standardised', False)}")
    source, target = ck["model"], model.state_dict()
    copied = [k for k, v in target.items() if k in source and source[k].shape == v.shape]
    for k in copied:
        target[k].copy_(source[k])
    silenced = []
    for branch in MASK_BRANCHES:
        if hasattr(model, branch) and not any(k.startswith(branch + ".") for k in source):
            _zero(getattr(model, branch))
            silenced.append(branch)
    fresh = [k for k in target if k not in copied and k.split(".")[0] not in silenced]
    print(f"init from {checkpoint}: {len(copied)} tensors copied, new mask branches at zero: {silenced or 'none'}, "
          f"fresh init: {len(fresh)} tensors")
    return {"copied": copied, "silenced": silenced, "fresh": fresh}


def _save(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def train(cfg: TrainConfig) -> dict:
    cfg.validate()
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    last_path, best_path, log_path = out / "last.pt", out / "best.pt", out / "log.jsonl"

    enc = open_encoder(cfg.encoder, cfg.encoder_color, cfg.threads)
    train_data = load_data(cfg.train, cfg, enc, "train", cfg.soft_labels)
    valid_data = load_data(cfg.valid, cfg, enc, "test")
    dim = train_data.plain.shape[1]
    print(f"train {len(train_data)} {train_data.faceset.class_counts()}\nvalid {len(valid_data)}; feature dim {dim}")

    model = build_model(cfg, dim, train_data.plain)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.gamma)
    encoder_info = {"file": enc.path.name, "sha256": enc.sha256, "color": cfg.encoder_color}
    meta = {**model.describe(), "feature_dim": dim, "image_size": cfg.image_size, "encoder": encoder_info,
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}}
    state = {"epoch": 0, "step": 0, "best_acc": -1.0, "best_epoch": -1, "elapsed": 0.0}

    if cfg.resume and last_path.is_file():
        ck = torch.load(last_path, map_location="cpu", weights_only=False)
        if ck["meta"]["variant"] != cfg.variant or ck["meta"]["feature_dim"] != dim:
            raise ValueError(f"{last_path}: checkpoint is for another variant / feature dim; use a new --out")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        state = ck["state"]
        print(f"resumed {last_path} at epoch {state['epoch']} step {state['step']}")
    elif last_path.is_file():
        raise FileExistsError(f"{last_path} exists; pass --resume to continue it or use another --out")

    def checkpoint() -> None:
        _save(last_path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                          "scheduler": sched.state_dict(), "state": state, "meta": meta})

    augment = TrainAugment(cfg.image_size)
    n = len(train_data)
    steps = math.ceil(n / cfg.batch_size)
    if cfg.max_steps:
        steps = min(steps, cfg.max_steps)
    def select(at: float) -> tuple[dict, bool]:
        """Evaluate on the validation set; keep best.pt when it improves (model selection on Valid only)."""
        valid = evaluate_torch(model, valid_data, cfg.image_size)
        improved = valid["accuracy"] > state["best_acc"]
        if improved:
            state["best_acc"], state["best_epoch"] = valid["accuracy"], at
            _save(best_path, {"model": model.state_dict(), "meta": meta, "valid_accuracy": valid["accuracy"],
                              "epoch": at})
        return valid, improved

    def log(row: dict) -> None:
        with open(log_path, "a") as f:
            f.write(json.dumps(row) + "\n")

    model.train()
    t_start = time.perf_counter() - state["elapsed"]
    result, stopped = {}, False
    while state["epoch"] < cfg.epochs:
        epoch = state["epoch"]
        perm = torch.from_numpy(np.random.default_rng(cfg.seed + epoch).permutation(n))
        bar = tqdm(range(state["step"], steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step",
                   initial=state["step"], total=steps, disable=not cfg.progress, mininterval=5)
        sums, seen, t_epoch = {"loss": 0.0, "correct": 0}, 0, time.perf_counter()
        for step in bar:
            idx = perm[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            g = torch.Generator().manual_seed(_step_seed(cfg.seed, epoch, step))
            if model.uses_image:
                x, flipped = augment(train_data.images[idx], g)
            else:  # encoder + FC: the image is unused; only the flip choice matters
                flipped = torch.rand(len(idx), generator=g) < 0.5
                x = torch.zeros(len(idx), 3, 1, 1)
            feats = train_data.plain[idx]
            if train_data.flipped is not None:  # else: the mirrored image gets the plain image's feature
                feats = torch.where(flipped.view(-1, 1), train_data.flipped[idx], feats)
            target = train_data.targets[idx]
            logits, f = model(x, feats)
            if model.uses_cafe_losses:
                drop = channel_drop_mask(dim, random.Random(_step_seed(cfg.seed, epoch, step)))
                loss, _ = cafe_loss(logits, f, target, drop, cfg.w_sep, cfg.w_div)
            else:
                loss = cross_entropy(logits, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sums["loss"] += loss.item() * len(idx)
            sums["correct"] += int((logits.argmax(1) == train_data.labels[idx]).sum())
            seen += len(idx)
            state["step"] = step + 1
            bar.set_postfix(loss=f"{sums['loss'] / seen:.3f}", acc=f"{sums['correct'] / seen:.3f}",
                            refresh=False)
            if state["step"] % cfg.checkpoint_every == 0:
                state["elapsed"] = time.perf_counter() - t_start
                checkpoint()
            over = cfg.time_budget_min is not None and time.perf_counter() - t_start > cfg.time_budget_min * 60
            if state["step"] < steps and (over or (cfg.eval_every and state["step"] % cfg.eval_every == 0)):
                # a selection point inside the epoch (still on the validation set)
                at = round(epoch + state["step"] / steps, 3)
                valid, improved = select(at)
                state["elapsed"] = time.perf_counter() - t_start
                checkpoint()
                log({"epoch": at, "partial": True, "train_loss": sums["loss"] / seen,
                     "train_acc": sums["correct"] / seen, "valid_acc": valid["accuracy"],
                     "elapsed_s": state["elapsed"], "best": improved})
                if over:
                    stopped = True
                    print(f"time budget of {cfg.time_budget_min} min reached at epoch {at}; stopping "
                          f"(--resume continues it)", flush=True)
                    break
        if stopped:
            break
        train_rate = seen / max(time.perf_counter() - t_epoch, 1e-9)
        sched.step()
        valid, improved = select(epoch + 1)
        state.update(epoch=epoch + 1, step=0, elapsed=time.perf_counter() - t_start)
        checkpoint()
        result = {"epoch": epoch + 1, "train_loss": sums["loss"] / max(seen, 1),
                  "train_acc": sums["correct"] / max(seen, 1), "valid_acc": valid["accuracy"],
                  "lr": opt.param_groups[0]["lr"], "img_per_s": train_rate, "elapsed_s": state["elapsed"],
                  "best": improved}
        log(result)
        print(f"epoch {epoch + 1}: train loss {result['train_loss']:.4f} acc {result['train_acc']:.4f} | "
              f"valid acc {valid['accuracy']:.4f}{' (best)' if improved else ''} | {train_rate:.0f} img/s",
              flush=True)
        epoch_s = time.perf_counter() - t_epoch
        if (cfg.time_budget_min and state["epoch"] < cfg.epochs
                and state["elapsed"] + epoch_s > cfg.time_budget_min * 60):
            # the next epoch (as long as this one) would overrun the budget: stop at an epoch boundary
            stopped = True
            print(f"stopping after epoch {epoch + 1}: another {epoch_s / 60:.1f} min epoch would pass the "
                  f"{cfg.time_budget_min} min budget (--resume with a larger budget continues it)", flush=True)
            break
    return {"best_valid_acc": state["best_acc"], "best_epoch": state["best_epoch"], "last": result,
            "stopped_by_budget": stopped, "best_checkpoint": str(best_path)}
