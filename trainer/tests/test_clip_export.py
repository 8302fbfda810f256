"""export-clip: a random ViT-B/32 image tower saved in each checkpoint layout, exported, ONNX Runtime vs PyTorch.

The weights are random (nothing may be downloaded), but the architecture is the real one, so the key names,
shapes and the export path are exercised exactly as with OpenAI's checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from cafe_models.clip_encoder import (
    IMAGENET_MEAN,
    CLIP_STD,
    CheckpointError,
    VisionArch,
    build_tower,
    export_clip,
    load_clip_tower,
)

ARCH = VisionArch(width=768, layers=12, patch_size=32, image_size=224, embed_dim=512, quick_gelu=True)


@pytest.fixture(scope="module")
def tower() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_tower(ARCH).eval()
    with torch.no_grad():   # open_clip leaves proj/class_embedding small; make every tensor matter
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(1).normal(size=(3, 3, 224, 224)).astype(np.float32))


@pytest.fixture
def workdir(tmp_path: Path):
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)   # checkpoints and ONNX files are ~350 MB each


def _open_clip_layout(tower: torch.nn.Module, folder: Path) -> Path:
    # An open_clip training checkpoint: {"state_dict": ...} with DDP's "module." prefix and text keys too.
    state = {f"module.visual.{k}": v.clone() for k, v in tower.state_dict().items()}
    state["module.logit_scale"] = torch.tensor(4.6)
    state["module.token_embedding.weight"] = torch.zeros(8, 4)
    path = folder / "epoch_1.pt"
    torch.save({"epoch": 1, "state_dict": state}, path)
    return path


def _openai_jit_layout(tower: torch.nn.Module, folder: Path) -> Path:
    # OpenAI's ViT-B-32.pt is a TorchScript archive of the whole CLIP model with fp16 weights.
    class Clip(torch.nn.Module):
        def __init__(self, visual: torch.nn.Module):
            super().__init__()
            self.visual = visual
            self.register_buffer("input_resolution", torch.tensor(224))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.visual(x)

    wrapper = Clip(_copy(tower)).eval()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        traced = torch.jit.trace(wrapper, torch.zeros(1, 3, 224, 224), check_trace=False)
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    traced = traced.half()
    path = folder / "ViT-B-32.pt"
    torch.jit.save(traced, str(path))
    return path


def _hf_layout(tower: torch.nn.Module, folder: Path) -> Path:
    # CLIPVisionModelWithProjection's names, written out by hand (not via the code under test).
    from safetensors.torch import save_file

    sd = tower.state_dict()
    hf = {
        "vision_model.embeddings.patch_embedding.weight": sd["conv1.weight"],
        "vision_model.embeddings.class_embedding": sd["class_embedding"],
        "vision_model.embeddings.position_embedding.weight": sd["positional_embedding"],
        "vision_model.embeddings.position_ids": torch.arange(50)[None],
        "vision_model.pre_layrnorm.weight": sd["ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": sd["ln_pre.bias"],
        "vision_model.post_layernorm.weight": sd["ln_post.weight"],
        "vision_model.post_layernorm.bias": sd["ln_post.bias"],
        "visual_projection.weight": sd["proj"].t(),
    }
    for i in range(ARCH.layers):
        src, dst = f"transformer.resblocks.{i}.", f"vision_model.encoder.layers.{i}."
        q, k, v = sd[src + "attn.in_proj_weight"].chunk(3)
        qb, kb, vb = sd[src + "attn.in_proj_bias"].chunk(3)
        hf.update({
            dst + "self_attn.q_proj.weight": q, dst + "self_attn.k_proj.weight": k, dst + "self_attn.v_proj.weight": v,
            dst + "self_attn.q_proj.bias": qb, dst + "self_attn.k_proj.bias": kb, dst + "self_attn.v_proj.bias": vb,
            dst + "self_attn.out_proj.weight": sd[src + "attn.out_proj.weight"],
            dst + "self_attn.out_proj.bias": sd[src + "attn.out_proj.bias"],
            dst + "layer_norm1.weight": sd[src + "ln_1.weight"], dst + "layer_norm1.bias": sd[src + "ln_1.bias"],
            dst + "layer_norm2.weight": sd[src + "ln_2.weight"], dst + "layer_norm2.bias": sd[src + "ln_2.bias"],
            dst + "mlp.fc1.weight": sd[src + "mlp.c_fc.weight"], dst + "mlp.fc1.bias": sd[src + "mlp.c_fc.bias"],
            dst + "mlp.fc2.weight": sd[src + "mlp.c_proj.weight"], dst + "mlp.fc2.bias": sd[src + "mlp.c_proj.bias"],
        })
    folder = folder / "clip-vit-base-patch32"
    folder.mkdir()
    save_file({k: v.contiguous().clone() for k, v in hf.items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["CLIPVisionModelWithProjection"], "model_type": "clip_vision_model",
        "hidden_act": "quick_gelu", "hidden_size": 768, "num_hidden_layers": 12, "patch_size": 32,
        "image_size": 224, "projection_dim": 512, "layer_norm_eps": 1e-5,
    }))
    return folder


def _copy(tower: torch.nn.Module, half: bool = False) -> torch.nn.Module:
    clone = build_tower(ARCH).eval()
    state = {k: (v.half().float() if half else v.clone()) for k, v in tower.state_dict().items()}
    clone.load_state_dict(state)
    return clone


@pytest.mark.parametrize("layout", ["open_clip", "openai_jit", "huggingface"])
def test_export_matches_pytorch(layout: str, tower, images, workdir: Path) -> None:
    write = {"open_clip": _open_clip_layout, "openai_jit": _openai_jit_layout, "huggingface": _hf_layout}[layout]
    checkpoint = write(tower, workdir)
    onnx_path, manifest_path = export_clip(checkpoint, workdir / "out")

    # The fp16 archive can only reproduce the fp16-rounded weights.
    reference = _copy(tower, half=layout == "openai_jit")
    with torch.no_grad():
        want = reference(images).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"image": images.numpy()})     # batch 3; the export traced batch 2
    assert got.shape == (3, 512)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    # Not L2-normalised: the paper multiplies the raw projected embedding by the mask.
    assert not np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-3)

    manifest = json.loads(manifest_path.read_text())
    assert manifest["role"] == "encoder" and manifest["output"] == {"name": "features", "dim": 512}
    image = manifest["inputs"]["image"]
    assert (image["layout"], image["height"], image["color"]) == ("NCHW", 224, "rgb")
    assert image["mean"] == pytest.approx(IMAGENET_MEAN)
    assert "QuickGELU" in manifest["source"]


def test_clip_normalization_and_activation_options(tower, workdir: Path) -> None:
    checkpoint = _open_clip_layout(tower, workdir)
    assert load_clip_tower(checkpoint).arch.quick_gelu is True
    assert load_clip_tower(checkpoint, activation="gelu").arch.quick_gelu is False
    (workdir / "open_clip_config.json").write_text(json.dumps({"model_cfg": {"quick_gelu": False}}))
    assert load_clip_tower(checkpoint).arch == VisionArch(768, 12, 32, 224, 512, quick_gelu=False)
    with pytest.raises(ValueError, match="normalization"):
        export_clip(checkpoint, workdir / "out", normalization="laion")
    assert CLIP_STD[0] == pytest.approx(0.2686, abs=1e-4)


def test_malformed_checkpoint_names_file_and_keys(tower, workdir: Path) -> None:
    state = {f"visual.{k}": v for k, v in tower.state_dict().items()}
    del state["visual.ln_post.weight"]
    del state["visual.transformer.resblocks.3.attn.in_proj_weight"]
    path = workdir / "broken.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        export_clip(path, workdir / "out")
    message = str(info.value)
    assert str(path) in message
    assert "ln_post.weight" in message and "transformer.resblocks.3.attn.in_proj_weight" in message
    assert not (workdir / "out").exists()


def test_not_a_clip_checkpoint(workdir: Path) -> None:
    junk = workdir / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_clip_tower(junk)
    other = workdir / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(1), "fc.weight": torch.zeros(1)}, other)
    with pytest.raises(CheckpointError, match=r"resnet\.pt.*visual"):
        load_clip_tower(other)
    with pytest.raises(CheckpointError, match="not found"):
        load_clip_tower(workdir / "missing.pt")
