"""Export a CLIP ViT image tower (the paper's encoder) from a local checkpoint to ONNX.

Output `features` is the projected image embedding (ln_post(CLS) @ proj, 512-d for ViT-B/32), NOT
L2-normalised: that is what CAFE's reference code multiplies with the mask (cafe-method.md 1.2).

Three checkpoint layouts are read, all into open_clip's `VisionTransformer` (whose parameter names are
OpenAI's):
- OpenAI `.pt`: a TorchScript archive (as `clip.load` downloads it, fp16) or a plain state dict;
- an open_clip state dict (optionally under "state_dict", optionally with a DDP "module." prefix);
- a Hugging Face folder (`CLIPModel` or `CLIPVisionModelWithProjection`: config.json + model.safetensors or
  pytorch_model.bin), whose keys are mapped here, without `transformers`.

The architecture (width, depth, patch, image size, embedding size) is read from the weights, and every
tower parameter must be present: a partial load would silently give a random encoder.
"""

from __future__ import annotations

import json
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from .manifest import image_input, write_manifest

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
NORMALIZATIONS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "clip": (CLIP_MEAN, CLIP_STD)}
OPSET = 17


class CheckpointError(ValueError):
    """The checkpoint cannot be read as a CLIP ViT image tower."""


@dataclass(frozen=True)
class VisionArch:
    width: int
    layers: int
    patch_size: int
    image_size: int
    embed_dim: int
    quick_gelu: bool

    @property
    def heads(self) -> int:
        return self.width // 64     # every OpenAI/open_clip ViT uses 64-wide heads


@dataclass
class LoadedTower:
    state: dict[str, torch.Tensor]     # open_clip VisionTransformer names, no "visual." prefix
    arch: VisionArch
    layout: str                         # "openai-jit", "state-dict" (OpenAI or open_clip), "huggingface"


# -- reading checkpoints --------------------------------------------------------------------------------------

def _to_float(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().float() if v.is_floating_point() else v.detach() for k, v in state.items()}


def _strip_visual(path: Path, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in ("module.visual.", "visual.", "module.image_encoder.", "image_encoder."):
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if sub:
            return sub
    sample = ", ".join(list(state)[:5])
    raise CheckpointError(f"{path}: no CLIP image tower ('visual.*' keys) in the checkpoint; first keys: {sample}")


def _read_state_file(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """An OpenAI TorchScript archive, or a state dict (.pt/.bin/.safetensors) in OpenAI/open_clip names."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            return dict(load_file(str(path), device="cpu")), "state-dict"
        except Exception as err:
            raise CheckpointError(f"{path}: unreadable safetensors file: {err}") from err
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            is_jit = any(n.endswith("constants.pkl") or "/code/" in n for n in zf.namelist())
        if is_jit:
            try:
                module = torch.jit.load(str(path), map_location="cpu")
            except Exception as err:
                raise CheckpointError(f"{path}: unreadable TorchScript archive: {err}") from err
            return dict(module.state_dict()), "openai-jit"
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint: {err}") from err
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]                      # open_clip training checkpoints
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors, got {type(obj).__name__}")
    # OpenAI's and open_clip's parameter names are the same; they differ only in the activation the weights
    # were trained with, which the caller decides.
    return dict(obj), "state-dict"


def _read_hf_weights(folder: Path) -> dict[str, torch.Tensor]:
    st = sorted(folder.glob("*.safetensors"))
    if st:
        from safetensors.torch import load_file
        state: dict[str, torch.Tensor] = {}
        for f in st:
            state.update(load_file(str(f), device="cpu"))
        return state
    bins = sorted(folder.glob("pytorch_model*.bin"))
    if not bins:
        raise CheckpointError(f"{folder}: Hugging Face folder without model.safetensors or pytorch_model.bin")
    state = {}
    for f in bins:
        state.update(torch.load(str(f), map_location="cpu", weights_only=True))
    return state


_HF_LAYER = re.compile(r"^vision_model\.encoder\.layers\.(\d+)\.(.+)$")
_HF_LAYER_MAP = {
    "layer_norm1.weight": "ln_1.weight", "layer_norm1.bias": "ln_1.bias",
    "layer_norm2.weight": "ln_2.weight", "layer_norm2.bias": "ln_2.bias",
    "self_attn.out_proj.weight": "attn.out_proj.weight", "self_attn.out_proj.bias": "attn.out_proj.bias",
    "mlp.fc1.weight": "mlp.c_fc.weight", "mlp.fc1.bias": "mlp.c_fc.bias",
    "mlp.fc2.weight": "mlp.c_proj.weight", "mlp.fc2.bias": "mlp.c_proj.bias",
}
_HF_TOP_MAP = {
    "vision_model.embeddings.patch_embedding.weight": "conv1.weight",
    "vision_model.embeddings.class_embedding": "class_embedding",
    "vision_model.embeddings.position_embedding.weight": "positional_embedding",
    "vision_model.pre_layrnorm.weight": "ln_pre.weight",     # sic: HF's spelling
    "vision_model.pre_layrnorm.bias": "ln_pre.bias",
    "vision_model.post_layernorm.weight": "ln_post.weight",
    "vision_model.post_layernorm.bias": "ln_post.bias",
}


def hf_to_open_clip(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map HF CLIP vision keys to open_clip VisionTransformer keys (q/k/v fused into in_proj)."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if not key.startswith(("vision_model.", "visual_projection.")) or key.endswith("position_ids"):
            continue                                      # text tower, logit scale, index buffers
        if key in _HF_TOP_MAP:
            out[_HF_TOP_MAP[key]] = value
        elif key == "visual_projection.weight":
            out["proj"] = value.t().contiguous()          # HF Linear [embed, width]; open_clip x @ proj
        elif m := _HF_LAYER.match(key):
            i, rest = int(m.group(1)), m.group(2)
            if rest in _HF_LAYER_MAP:
                out[f"transformer.resblocks.{i}.{_HF_LAYER_MAP[rest]}"] = value
            elif rest.startswith("self_attn.") and rest.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
                qkv.setdefault(i, {})[rest[len("self_attn."):]] = value
            else:
                out[f"unmapped:{key}"] = value
    for i, parts in qkv.items():
        for kind in ("weight", "bias"):
            names = [f"{p}_proj.{kind}" for p in "qkv"]
            if all(n in parts for n in names):
                out[f"transformer.resblocks.{i}.attn.in_proj_{kind}"] = torch.cat([parts[n] for n in names])
    return out


def _infer_arch(path: Path, state: Mapping[str, torch.Tensor], quick_gelu: bool) -> VisionArch:
    needed = ("conv1.weight", "positional_embedding", "proj")
    missing = [k for k in needed if k not in state]
    if missing:
        raise CheckpointError(f"{path}: missing image tower keys {missing}")
    width, _, patch, _ = state["conv1.weight"].shape
    tokens = state["positional_embedding"].shape[0]
    grid = int(round((tokens - 1) ** 0.5))
    if grid * grid + 1 != tokens:
        raise CheckpointError(f"{path}: positional_embedding has {tokens} tokens, not a square grid + CLS")
    layers = len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")})
    return VisionArch(width=int(width), layers=layers, patch_size=int(patch), image_size=grid * int(patch),
                      embed_dim=int(state["proj"].shape[1]), quick_gelu=quick_gelu)


def load_clip_tower(checkpoint: str | Path, activation: str = "auto") -> LoadedTower:
    """Read any supported layout into open_clip names and infer the architecture.

    `activation`: "quick_gelu" (OpenAI's CLIP, also under HF's `openai/clip-*`), "gelu" (LAION-trained
    open_clip models), or "auto": config.json's hidden_act for a HF folder, an open_clip_config.json beside a
    state dict if there is one, else quick_gelu, since the paper's encoder is OpenAI's ViT-B/32.
    """
    path = Path(checkpoint)
    if activation not in ("auto", "quick_gelu", "gelu"):
        raise ValueError(f"activation must be auto, quick_gelu or gelu, got {activation!r}")
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    auto_quick = True
    if path.is_dir():
        cfg_path = path / "config.json"
        if not cfg_path.is_file():
            raise CheckpointError(f"{path}: a Hugging Face folder needs config.json")
        cfg = json.loads(cfg_path.read_text())
        auto_quick = cfg.get("vision_config", cfg).get("hidden_act", "quick_gelu") == "quick_gelu"
        state = hf_to_open_clip(_read_hf_weights(path))
        layout = "huggingface"
        if not state:
            raise CheckpointError(f"{path}: no 'vision_model.*' keys in the weights")
    else:
        raw, layout = _read_state_file(path)
        state = _strip_visual(path, raw)
        oc_cfg = path.parent / "open_clip_config.json"
        if layout == "state-dict" and oc_cfg.is_file():
            auto_quick = bool(json.loads(oc_cfg.read_text()).get("model_cfg", {}).get("quick_gelu", False))
    quick = auto_quick if activation == "auto" else activation == "quick_gelu"
    state = _to_float(state)
    return LoadedTower(state=state, arch=_infer_arch(path, state, quick), layout=layout)


def build_tower(arch: VisionArch) -> torch.nn.Module:
    from open_clip.model import CLIPVisionCfg, _build_vision_tower

    cfg = CLIPVisionCfg(layers=arch.layers, width=arch.width, patch_size=arch.patch_size,
                        image_size=arch.image_size)
    return _build_vision_tower(arch.embed_dim, cfg, quick_gelu=arch.quick_gelu)


def tower_from_checkpoint(checkpoint: str | Path, activation: str = "auto") -> tuple[torch.nn.Module, LoadedTower]:
    loaded = load_clip_tower(checkpoint, activation)
    # Built on the meta device: random initialisation of 88M parameters only to overwrite them costs
    # seconds; load_state_dict(assign=True) then puts the checkpoint's tensors in place.
    with torch.device("meta"):
        tower = build_tower(loaded.arch)
    expected = set(tower.state_dict())
    given = set(loaded.state)
    missing, unexpected = sorted(expected - given), sorted(given - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_short(unexpected)}")
        raise CheckpointError(f"{checkpoint}: not a CLIP ViT image tower ({loaded.layout} layout): "
                              + "; ".join(parts))
    try:
        tower.load_state_dict(loaded.state, strict=True, assign=True)
    except RuntimeError as err:   # shape mismatches
        raise CheckpointError(f"{checkpoint}: {err}") from err
    left = [n for n, t in [*tower.named_parameters(), *tower.named_buffers()] if t.is_meta]
    if left:
        raise CheckpointError(f"{checkpoint}: tensors not set by the checkpoint: {_short(left)}")
    return tower.eval(), loaded


def _short(keys: list[str], n: int = 8) -> str:
    return ", ".join(keys[:n]) + (f" … ({len(keys)} in all)" if len(keys) > n else "")


# -- export ---------------------------------------------------------------------------------------------------

def export_tower_onnx(tower: torch.nn.Module, image_size: int, onnx_path: Path) -> float:
    """Export with a dynamic batch axis and return the max |ONNX Runtime - PyTorch| on a random batch."""
    import onnx
    import onnxruntime as ort

    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(2, 3, image_size, image_size)
    # nn.MultiheadAttention's inference fast path (aten::_native_multi_head_attention) has no ONNX export;
    # switch it off while tracing and restore the caller's setting.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter is deprecated in favour of the dynamo one, which needs onnxscript (not
            # installed); its tracer warnings are MultiheadAttention's shape checks, constant for a fixed size.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(tower, (example,), str(onnx_path), input_names=["image"],
                              output_names=["features"],
                              dynamic_axes={"image": {0: "N"}, "features": {0: "N"}}, opset_version=OPSET,
                              do_constant_folding=True, dynamo=False)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    with torch.no_grad():
        expected = tower(example).numpy()
    onnx.checker.check_model(str(onnx_path))
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"image": example.numpy()})
    diff = float(np.abs(got - expected).max())
    if not np.isfinite(diff) or diff > 1e-3:
        raise RuntimeError(f"{onnx_path}: ONNX Runtime differs from PyTorch by {diff:g}")
    return diff


def export_clip(checkpoint: str | Path, out_dir: str | Path, *, normalization: str = "imagenet",
                name: str = "clip-vit-b32", activation: str = "auto") -> tuple[Path, Path]:
    """Write `<out_dir>/encoder-<name>.onnx` and its manifest; return both paths."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {sorted(NORMALIZATIONS)}, got {normalization!r}")
    tower, loaded = tower_from_checkpoint(checkpoint, activation)
    arch = loaded.arch
    onnx_path = Path(out_dir) / f"encoder-{name}.onnx"
    diff = export_tower_onnx(tower, arch.image_size, onnx_path)
    mean, std = NORMALIZATIONS[normalization]
    feeding = ("ImageNet mean/std, as the CAFE reference code feeds CLIP (cafe-method.md 1.2)"
               if normalization == "imagenet" else "CLIP's own mean/std")
    source = (
        f"CLIP ViT (width {arch.width}, {arch.layers} layers, patch {arch.patch_size}, "
        f"{'QuickGELU' if arch.quick_gelu else 'GELU'}) image tower from {Path(checkpoint).name} "
        f"({loaded.layout} layout); output = projected {arch.embed_dim}-d image embedding, not L2-normalised; "
        f"input: plain {arch.image_size}x{arch.image_size} bilinear resize, {feeding}; "
        f"ONNX Runtime vs PyTorch max |diff| {diff:.1e} at export"
    )
    manifest = write_manifest(
        onnx_path, role="encoder", name=name, source=source,
        inputs={"image": image_input(name="image", layout="NCHW", size=arch.image_size, color="rgb",
                                     mean=mean, std=std, resize="bilinear")},
        output={"name": "features", "dim": arch.embed_dim},
    )
    return onnx_path, manifest
