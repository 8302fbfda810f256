"""`trainer` CLI: train, evaluate, export-head, cache-features, bench (+ the encoder commands from
encoder_cli). Each subcommand builds its typed config (params.py) once and hands it on."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cafe_models.cafe import MASK_SOURCES, VARIANTS
from cafe_models.datasets import FERPLUS_PROTOCOLS, DatasetError

from .params import CacheConfig, EvalConfig, ExportConfig, TrainConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
FLOAT_MODELS = REPO_ROOT / ".cache" / "models-float"  # the float encoder and the head, built by scripts/setup-trainer.sh


def _train(a: argparse.Namespace) -> int:
    from .train import train

    cfg = TrainConfig(
        train=a.train, valid=a.valid, encoder=Path(a.encoder), out=Path(a.out), variant=a.variant,
        image_size=a.image_size, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay,
        gamma=a.gamma, w_sep=a.w_sep, w_div=a.w_div, seed=a.seed, soft_labels=a.soft_labels,
        ferplus_protocol=a.ferplus_protocol, encoder_color=a.encoder_color,
        mirror_features=not a.no_mirror_features, threads=a.threads, resume=a.resume,
        mask_checkpoint=Path(a.mask_checkpoint) if a.mask_checkpoint else None,
        cache_dir=Path(a.cache_dir) if a.cache_dir else None, limit=a.limit, max_steps=a.max_steps,
        time_budget_min=a.time_budget_min, eval_every=a.eval_every,
        init_fc=Path(a.init_fc) if a.init_fc else None, init_from=Path(a.init_from) if a.init_from else None,
        mask_source=a.mask_source, standardise_features=not a.no_standardise, progress=not a.no_progress)
    print(json.dumps(train(cfg), indent=2))
    return 0


def _train_xd(a: argparse.Namespace) -> int:
    from .train_xd import XdConfig, train_xd

    cfg = XdConfig(train=a.train, valid=a.valid, encoder=Path(a.encoder), out=Path(a.out),
                   cache_dir=Path(a.cache_dir), variant=a.variant, train_weights=a.train_weights or [],
                   views=a.views, domain_views=a.domain_views, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                   weight_decay=a.weight_decay, gamma=a.gamma, w_sep=a.w_sep, w_div=a.w_div,
                   logit_adjust=a.logit_adjust, label_smoothing=a.label_smoothing, seed=a.seed, threads=a.threads,
                   progress=not a.no_progress, report=a.report or [],
                   encoder_parts=[Path(e) for e in a.encoder_parts or []], soft_labels=a.soft_labels,
                   select=a.select)
    print(json.dumps(train_xd(cfg), indent=2))
    return 0


def _score(a: argparse.Namespace) -> int:
    from .train_xd import score_predictions

    print(json.dumps({str(p): score_predictions(Path(p), a.part) for p in a.crops}, indent=2))
    return 0


def _cache(a: argparse.Namespace) -> int:
    import torch

    from cafe_models.datasets import load_set

    from .features import cached_features, open_encoder

    cfg = CacheConfig(sets=a.sets, encoder=Path(a.encoder), cache_dir=Path(a.cache_dir),
                      encoder_color=a.encoder_color, ferplus_protocol=a.ferplus_protocol, threads=a.threads,
                      batch_size=a.batch_size)
    torch.set_num_threads(cfg.threads)
    enc = open_encoder(cfg.encoder, cfg.encoder_color, cfg.threads)
    for spec in cfg.sets:
        faceset = load_set(spec, rafdb_split="train", ferplus_protocol=cfg.ferplus_protocol)
        feats = cached_features(faceset, enc, cfg.cache_dir, mirrored=not a.plain_only, batch_size=cfg.batch_size)
        print(f"{spec}: {len(faceset)} images, features {feats.plain.shape}")
    return 0


def _export(a: argparse.Namespace) -> int:
    from .export_head import export_head

    cfg = ExportConfig(checkpoint=Path(a.checkpoint), out=Path(a.out), name=a.name, valid=a.valid or [],
                       fp16=a.fp16)
    print(json.dumps(export_head(cfg), indent=2))
    return 0


def _evaluate(a: argparse.Namespace) -> int:
    from .evaluate import evaluate, format_report

    cfg = EvalConfig(models=Path(a.models), sets=a.sets, head=Path(a.head) if a.head else None,
                     batch_size=a.batch_size, threads=a.threads, ferplus_protocol=a.ferplus_protocol,
                     json=a.json, bgr=a.bgr)
    report = evaluate(cfg)
    print(json.dumps(report, indent=2) if cfg.json else format_report(report))
    return 0


def _bench(a: argparse.Namespace) -> int:
    from .bench import bench

    print(json.dumps(bench(Path(a.encoder), a.image_size, a.threads, a.steps, mask_source=a.mask_source), indent=2))
    return 0


def _schedule_args(p: argparse.ArgumentParser, *, epochs: int, batch_size: int) -> None:
    """The optimiser schedule and CAFE loss weights `train` and `train-xd` share (cafe-method.md's values)."""
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--gamma", type=float, default=0.9, help="ExponentialLR factor per epoch")
    p.add_argument("--w-sep", type=float, default=1.5, help="weight of the separation CE")
    p.add_argument("--w-div", type=float, default=5.0, help="weight of the channel-diverse loss")
    p.add_argument("--seed", type=int, default=3407)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trainer", description="Train, evaluate and export cafe-stream's models.")
    sub = p.add_subparsers(dest="command", required=True)
    default_encoder = str(FLOAT_MODELS / "encoder-faceres-emotion-faceapi.onnx")

    t = sub.add_parser("train", help="train a CAFE head (or an ablation) on cached encoder features")
    t.add_argument("--train", required=True, help="training set, layout:path (e.g. ferplus:/data/FER2013Train)")
    t.add_argument("--valid", required=True, help="selection set, layout:path (never a test set)")
    t.add_argument("--encoder", default=default_encoder, help="encoder ONNX with its manifest beside it")
    t.add_argument("--out", required=True, help="run directory (last.pt, best.pt, log.jsonl)")
    t.add_argument("--variant", choices=VARIANTS, default="cafe")
    t.add_argument("--image-size", type=int, default=64, help="mask-network input size (paper: 224)")
    _schedule_args(t, epochs=60, batch_size=32)
    t.add_argument("--soft-labels", action="store_true", help="FERPlus vote distributions as targets")
    t.add_argument("--ferplus-protocol", choices=FERPLUS_PROTOCOLS, default="majority")
    t.add_argument("--encoder-color", choices=("gray", "rgb"), default="gray")
    t.add_argument("--no-mirror-features", action="store_true",
                   help="cache only plain-image features; a flipped mask input then gets the plain feature")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--resume", action="store_true", help="continue <out>/last.pt")
    t.add_argument("--mask-checkpoint", help="MS-Celeb ResNet-18 state dict, loaded strictly")
    t.add_argument("--cache-dir", help="feature cache (default <out>/../cache)")
    t.add_argument("--limit", type=int, help="use only the first N training samples")
    t.add_argument("--max-steps", type=int, help="steps per epoch cap (smoke runs)")
    t.add_argument("--time-budget-min", type=float,
                   help="wall-clock budget: no epoch is started that would (at the last epoch's pace) end past it")
    t.add_argument("--eval-every", type=int, help="also evaluate/select on --valid every N steps")
    t.add_argument("--init-fc", help="encoder-fc run's best.pt: start the FC from it (mask starts uniform)")
    t.add_argument("--init-from", help="a run of the same variant's best.pt: warm start (new mask branches at zero)")
    t.add_argument("--mask-source", choices=MASK_SOURCES, default="image",
                   help="mask logits from the image (paper), the encoder features, or both (cafe variants)")
    t.add_argument("--no-standardise", action="store_true",
                   help="feed the encoder features raw instead of standardised with the training set's mean/std")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=_train)

    xd = sub.add_parser("train-xd", help="train a feature-mask head across domains (several train/selection sets, "
                                         "cached augmented views, logit adjustment); see cafe_train/train_xd.py")
    xd.add_argument("--train", action="append", required=True,
                    help="training set layout:path[@train]; repeat for several (e.g. FER+ and a performer split)")
    xd.add_argument("--train-weights", type=float, nargs="+",
                    help="share of each batch drawn from each --train set (default: by set size)")
    xd.add_argument("--valid", action="append", required=True,
                    help="selection domain layout:path[@val]; repeat; the best mean accuracy over them is kept")
    xd.add_argument("--encoder", default=default_encoder)
    xd.add_argument("--encoder-parts", nargs="+", metavar="ONNX",
                    help="encoders whose concatenated features equal --encoder's (its branches built alone, e.g. "
                         "`import-encoder --branches`): features are computed and cached per part, so adding a "
                         "branch reuses the cache of the others; checked against --encoder before training")
    xd.add_argument("--out", required=True)
    xd.add_argument("--cache-dir", required=True)
    xd.add_argument("--variant", choices=("cafe", "cafe-nosep", "cafe-nosigmoid", "encoder-fc"), default="cafe")
    xd.add_argument("--views", type=int, default=1, help="cached views per FER+ image (0 clean, 1 mirror, 2.. augmented)")
    xd.add_argument("--domain-views", type=int, help="cached views per image of the other training sets")
    _schedule_args(xd, epochs=30, batch_size=64)
    xd.add_argument("--logit-adjust", type=float, default=1.0, help="tau of the logit-adjusted loss (0: plain CE)")
    xd.add_argument("--label-smoothing", type=float, default=0.0)
    xd.add_argument("--threads", type=int, default=1)
    xd.add_argument("--report", action="append",
                    help="layout:path[@test] scored once with the selected checkpoint (held-out report; repeat)")
    xd.add_argument("--soft-labels", action="store_true",
                    help="FERPlus vote distributions as targets (other sets: their one label)")
    xd.add_argument("--select", choices=("accuracy", "balanced"), default="accuracy",
                    help="checkpoint selection: mean accuracy over --valid domains, or the mean of accuracy and "
                         "macro recall (balanced)")
    xd.add_argument("--no-progress", action="store_true")
    xd.set_defaults(func=_train_xd)

    sc = sub.add_parser("score-predictions", help="metrics of a `cafe-stream evaluate --save-crops` crops.csv "
                                                  "(product-path predictions), optionally on one performer-disjoint part")
    sc.add_argument("crops", nargs="+", help="crops.csv files")
    sc.add_argument("--part", choices=("train", "val", "test"), help="only the people of this part of the split")
    sc.set_defaults(func=_score)

    c = sub.add_parser("cache-features", help="compute and cache encoder features for datasets")
    c.add_argument("sets", nargs="+", help="layout:path ...")
    c.add_argument("--encoder", default=default_encoder)
    c.add_argument("--cache-dir", required=True)
    c.add_argument("--encoder-color", choices=("gray", "rgb"), default="gray")
    c.add_argument("--ferplus-protocol", choices=FERPLUS_PROTOCOLS, default="majority")
    c.add_argument("--plain-only", action="store_true", help="skip the mirrored images (selection/test sets)")
    c.add_argument("--threads", type=int, default=2)
    c.add_argument("--batch-size", type=int, default=16)
    c.set_defaults(func=_cache)

    x = sub.add_parser("export-head", help="export a trained head to ONNX + manifest")
    x.add_argument("checkpoint", help="best.pt from a run directory")
    x.add_argument("--out", default=str(REPO_ROOT / "models" / "cafe-head.onnx"))
    x.add_argument("--name", default="cafe-head")
    x.add_argument("--valid", nargs="*", help="layout:path sets to measure from the exported ONNX into metrics")
    x.add_argument("--fp16", action="store_true",
                   help="store the weights as float16 (half the file; checked against the fp32 graph)")
    x.set_defaults(func=_export)

    e = sub.add_parser("evaluate", help="evaluate the exported ONNX models on test sets")
    e.add_argument("--models", default=str(FLOAT_MODELS), help="folder with one head manifest and its encoder (default: the float set scripts/setup-trainer.sh builds)")
    e.add_argument("--head", help="head manifest, when the folder holds several")
    e.add_argument("sets", nargs="+", help="layout:path ... (ferplus, rafdb, affectnet, folder, csv)")
    e.add_argument("--batch-size", type=int, default=16)
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--ferplus-protocol", choices=FERPLUS_PROTOCOLS, default="majority")
    e.add_argument("--bgr", action="store_true", help="feed BGR images (reproduces the reference notebooks' bug)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=_evaluate)

    b = sub.add_parser("bench", help="training img/s and feature-cache img/s")
    b.add_argument("--encoder", default=default_encoder)
    b.add_argument("--image-size", type=int, default=64)
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--steps", type=int, default=10)
    b.add_argument("--mask-source", choices=MASK_SOURCES, default="image",
                   help="which CAFE head to time (the shipped one is both)")
    b.set_defaults(func=_bench)

    try:  # the encoder commands live in their own module (import-encoder, export-clip)
        from . import encoder_cli
    except ImportError:
        encoder_cli = None
    if encoder_cli is not None:
        encoder_cli.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DatasetError, FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"trainer {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
