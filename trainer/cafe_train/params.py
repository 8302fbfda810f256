"""Typed configs for the trainer's commands. The CLI (main.py) builds these once and validates them here;
code past this point trusts them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cafe_models.cafe import MASK_SOURCES, VARIANTS
from cafe_models.datasets import FERPLUS_PROTOCOLS


@dataclass
class TrainConfig:
    train: str                      # layout:path of the training set
    valid: str                      # layout:path of the selection set (never a test set)
    encoder: Path                   # encoder ONNX (its manifest beside it)
    out: Path                       # run directory: last.pt, best.pt, log.jsonl
    variant: str = "cafe"
    image_size: int = 64            # mask-network input (paper: 224)
    epochs: int = 60
    batch_size: int = 32
    lr: float = 2e-4
    weight_decay: float = 1e-4      # coupled L2 (torch.optim.Adam), as the reference
    gamma: float = 0.9              # ExponentialLR, stepped per epoch
    w_sep: float = 1.5
    w_div: float = 5.0
    seed: int = 3407
    soft_labels: bool = False       # FERPlus vote distributions as CE targets
    ferplus_protocol: str = "majority"
    encoder_color: str = "gray"     # how crops are fed to the encoder (FER images are grey)
    mirror_features: bool = True    # also cache features of mirrored images, so flips stay consistent
    threads: int = 2
    resume: bool = False
    mask_checkpoint: Path | None = None
    cache_dir: Path | None = None   # default: <out>/../cache
    limit: int | None = None        # use only the first N training samples (smoke runs)
    max_steps: int | None = None    # per epoch (smoke runs, benchmarks)
    time_budget_min: float | None = None  # start no epoch expected to end past this wall-clock budget
    checkpoint_every: int = 200     # steps between mid-epoch checkpoints
    eval_every: int | None = None   # steps between extra validation/selection points inside an epoch
    init_fc: Path | None = None     # encoder-fc checkpoint to start a cafe variant's FC from
    init_from: Path | None = None   # a run of the same variant to warm-start from (new mask branches at zero)
    mask_source: str = "image"      # mask logits from the image (paper), the encoder features, or both
    standardise_features: bool = True  # per-channel train mean/std on the encoder feature, inside the head
    progress: bool = True

    def validate(self) -> "TrainConfig":
        if self.variant not in VARIANTS:
            raise ValueError(f"--variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.ferplus_protocol not in FERPLUS_PROTOCOLS:
            raise ValueError(f"--ferplus-protocol must be one of {FERPLUS_PROTOCOLS}")
        if self.encoder_color not in ("rgb", "gray"):
            raise ValueError("--encoder-color must be rgb or gray")
        for name in ("image_size", "epochs", "batch_size", "threads", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.image_size < 32:
            raise ValueError("--image-size must be >= 32 (ResNet-18 downsamples by 32)")
        if not (self.lr > 0 and self.weight_decay >= 0 and 0 < self.gamma <= 1):
            raise ValueError("need lr > 0, weight_decay >= 0, 0 < gamma <= 1")
        if not Path(self.encoder).is_file():
            raise FileNotFoundError(f"{self.encoder}: encoder ONNX not found")
        if self.mask_checkpoint is not None and not Path(self.mask_checkpoint).is_file():
            raise FileNotFoundError(f"{self.mask_checkpoint}: mask checkpoint not found")
        if self.init_fc is not None and not Path(self.init_fc).is_file():
            raise FileNotFoundError(f"{self.init_fc}: --init-fc checkpoint not found")
        if self.init_from is not None and not Path(self.init_from).is_file():
            raise FileNotFoundError(f"{self.init_from}: --init-from checkpoint not found")
        if self.init_fc is not None and self.init_from is not None:
            raise ValueError("--init-fc and --init-from exclude each other")
        if self.mask_source not in MASK_SOURCES:
            raise ValueError(f"--mask-source must be one of {', '.join(MASK_SOURCES)}")
        if self.mask_source != "image" and not self.variant.startswith("cafe"):
            raise ValueError(f"--mask-source {self.mask_source} applies to the cafe variants, not {self.variant}")
        if self.cache_dir is None:
            self.cache_dir = Path(self.out).parent / "cache"
        return self


@dataclass
class CacheConfig:
    sets: list[str]
    encoder: Path
    cache_dir: Path
    encoder_color: str = "gray"
    ferplus_protocol: str = "majority"
    threads: int = 2
    batch_size: int = 64


@dataclass
class ExportConfig:
    checkpoint: Path
    out: Path                       # the head .onnx (manifest written beside it)
    name: str = "cafe-head"
    opset: int = 17
    valid: list[str] = field(default_factory=list)  # sets to measure from the exported ONNX for the manifest
    fp16: bool = False              # weights stored as float16 (cast to float32 at load)


@dataclass
class EvalConfig:
    models: Path
    sets: list[str]
    head: Path | None = None        # a head manifest, when the folder holds several
    batch_size: int = 64
    threads: int = 2
    ferplus_protocol: str = "majority"
    json: bool = False
    bgr: bool = False               # feed BGR (the reference notebooks' AffectNet/SFEW/MMA quirk)
