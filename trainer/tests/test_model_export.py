import numpy as np
import onnx
import pytest
import torch
import torchvision

from cafe_models.cafe import VARIANTS, CafeHead, ExportHead
from cafe_models.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageSpec, TrainAugment, eval_transform, preprocess
from cafe_train.export_head import export_onnx
from cafe_train.features import open_session


@pytest.mark.parametrize("variant", VARIANTS)
def test_export_parity_and_interface_for_every_variant(tmp_path, variant):
    torch.manual_seed(0)
    model = CafeHead(14, variant).eval()
    out = tmp_path / f"{variant}.onnx"
    diff = export_onnx(model, 32, out)
    assert diff < 1e-4
    graph = onnx.load(str(out)).graph
    assert [i.name for i in graph.input] == ["image", "features"]  # both kept, even when one is unused
    assert [o.name for o in graph.output] == ["probabilities"]
    # dynamic batch: a batch of 5 runs and matches PyTorch, rows sum to 1
    image, feats = torch.randn(5, 3, 32, 32), torch.rand(5, 14)
    got = open_session(out, 1).run(None, {"image": image.numpy(), "features": feats.numpy()})[0]
    with torch.no_grad():
        ref = ExportHead(model)(image, feats).numpy()
    assert got.shape == (5, 7)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)


def test_variants_use_the_inputs_they_claim():
    torch.manual_seed(0)
    image, feats = torch.randn(2, 3, 32, 32), torch.rand(2, 14)
    for variant in VARIANTS:
        m = CafeHead(14, variant).eval()
        with torch.no_grad():
            base = m(image, feats)[0]
            img_changed = m(image + 1, feats)[0]
            feat_changed = m(image, feats + 1)[0]
        assert (not torch.allclose(base, img_changed)) == m.uses_image, variant
        assert (not torch.allclose(base, feat_changed)) == m.uses_features, variant


def test_cafe_masked_feature_is_feature_times_sigmoid_mask():
    torch.manual_seed(0)
    m = CafeHead(14, "cafe").eval()
    image, feats = torch.randn(2, 3, 32, 32), torch.rand(2, 14)
    with torch.no_grad():
        _, f = m(image, feats)
        expected = feats * torch.sigmoid(m.proj(m.mask(image)))
    torch.testing.assert_close(f, expected)


def test_mask_checkpoint_loads_strictly(tmp_path):
    ref = torchvision.models.resnet18(weights=None)  # 1000-way fc, like the MS-Celeb file
    path = tmp_path / "resnet18_msceleb.pth"
    torch.save({"state_dict": ref.state_dict()}, path)
    m = CafeHead(14, "cafe")
    m.mask.load_msceleb(path)
    torch.testing.assert_close(m.mask.resnet.conv1.weight, ref.conv1.weight)
    broken = {k: v for k, v in ref.state_dict().items() if not k.startswith("layer4.1")}
    torch.save({"state_dict": broken}, path)
    with pytest.raises(ValueError, match="missing"):
        CafeHead(14, "cafe").mask.load_msceleb(path)
    torch.save({"state_dict": {**ref.state_dict(), "extra.weight": torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match="unexpected"):
        CafeHead(14, "cafe").mask.load_msceleb(path)


def test_train_augment_shapes_flips_and_determinism():
    imgs = torch.arange(48, dtype=torch.uint8).repeat(4, 48, 1)  # horizontal ramp
    aug = TrainAugment(64, noise_p=0, erase_p=0)
    x, flipped = aug(imgs, torch.Generator().manual_seed(1))
    assert x.shape == (4, 3, 64, 64)
    plain = eval_transform(imgs, 64)
    for i in range(4):
        expected = plain[i].flip(-1) if flipped[i] else plain[i]
        torch.testing.assert_close(x[i], expected)
    x2, f2 = aug(imgs, torch.Generator().manual_seed(1))
    assert torch.equal(x, x2) and torch.equal(flipped, f2)
    erased, _ = TrainAugment(64, noise_p=0, flip_p=0, erase_p=1)(imgs, torch.Generator().manual_seed(2))
    for img in erased:  # each sample gets a rectangle set to 0 (after normalisation)
        assert int((img == 0).all(0).sum()) >= 0.02 * 64 * 64 * 0.9


def test_eval_transform_matches_pipeline_preprocess_for_gray_crops():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (3, 48, 48), dtype=np.uint8)
    rgb = [np.repeat(g[:, :, None], 3, axis=2) for g in gray]
    spec = ImageSpec(64, 64, "gray", "NCHW", IMAGENET_MEAN, IMAGENET_STD)
    np.testing.assert_allclose(preprocess(rgb, spec), eval_transform(torch.from_numpy(gray), 64).numpy(), atol=1e-5)


@pytest.mark.parametrize("variant", ["cafe", "cafe-nosigmoid", "cafe-nosep"])
def test_init_fc_starts_cafe_exactly_at_the_encoder_fc_prediction(tmp_path, variant):
    from cafe_train.train import init_fc_from_encoder_fc

    torch.manual_seed(0)
    base = CafeHead(14, "encoder-fc")
    path = tmp_path / "encfc.pt"
    torch.save({"model": base.state_dict(), "meta": {"variant": "encoder-fc", "feature_dim": 14}}, path)
    cafe = CafeHead(14, variant).eval()
    init_fc_from_encoder_fc(cafe, path)
    image, feats = torch.randn(3, 3, 32, 32), torch.rand(3, 14)
    with torch.no_grad():
        torch.testing.assert_close(cafe(image, feats)[0], base(image, feats)[0])
    with pytest.raises(ValueError, match="cafe variants"):
        init_fc_from_encoder_fc(CafeHead(14, "resnet"), path)


def _standardised_head(variant: str, mask_source: str) -> CafeHead:
    m = CafeHead(14, variant, mask_source=mask_source, standardised=True)
    m.set_feature_stats(torch.rand(50, 14) * torch.linspace(0.1, 3, 14))
    return m.eval()


@pytest.mark.parametrize("mask_source", ["features", "both"])
def test_feature_mask_sources_export_with_their_standardisation(tmp_path, mask_source):
    torch.manual_seed(0)
    model = _standardised_head("cafe", mask_source)
    out = tmp_path / f"{mask_source}.onnx"
    assert export_onnx(model, 32, out) < 1e-4
    image, feats = torch.randn(4, 3, 32, 32), torch.rand(4, 14)
    got = open_session(out, 1).run(None, {"image": image.numpy(), "features": feats.numpy()})[0]
    with torch.no_grad():
        z = (feats - model.feature_mean) / model.feature_std
        m = model.feature_mask(z) + (model.proj(model.mask(image)) if mask_source == "both" else 0)
        expected = torch.softmax(model.fc(z * torch.sigmoid(m)), 1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)  # the stats travel inside the graph
    assert model.uses_image == (mask_source == "both")
    assert hasattr(model, "mask") == (mask_source == "both")


def test_mask_source_applies_only_to_cafe_variants():
    with pytest.raises(ValueError, match="cafe variants"):
        CafeHead(14, "encoder-fc", mask_source="features")
    with pytest.raises(ValueError, match="unknown mask source"):
        CafeHead(14, "cafe", mask_source="pixels")


def test_old_checkpoint_meta_builds_the_paper_head():
    m = CafeHead.from_meta({"feature_dim": 14, "variant": "cafe"})
    assert (m.mask_source, m.standardised) == ("image", False)
    assert "feature_mean" not in m.state_dict()


def test_init_from_a_features_run_starts_both_exactly_at_its_prediction(tmp_path):
    from cafe_train.train import init_from_run

    torch.manual_seed(0)
    source = _standardised_head("cafe", "features")
    with torch.no_grad():
        source.fc.weight.normal_()
    path = tmp_path / "features.pt"
    torch.save({"model": source.state_dict(), "meta": {**source.describe(), "feature_dim": 14}}, path)
    both = CafeHead(14, "cafe", mask_source="both", standardised=True).eval()
    report = init_from_run(both, path)
    assert report["silenced"] == ["proj"] and any(k.startswith("mask.") for k in report["fresh"])
    image, feats = torch.randn(3, 3, 32, 32), torch.rand(3, 14)
    with torch.no_grad():
        torch.testing.assert_close(both(image, feats)[0], source(image, feats)[0])
        assert not torch.allclose(both(image, feats)[0], CafeHead(14, "cafe", mask_source="both",
                                                                   standardised=True).eval()(image, feats)[0])
    with pytest.raises(ValueError, match="standardised"):
        init_from_run(CafeHead(14, "cafe", mask_source="both"), path)
