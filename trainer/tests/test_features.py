import numpy as np

from cafe_models.datasets import load_ferplus, read_image
from cafe_train import features as feat
from conftest import make_ferplus


def test_cache_holds_plain_and_mirrored_features_and_resumes(tmp_path, tiny_encoder, monkeypatch):
    data = load_ferplus(make_ferplus(tmp_path / "d", per_class=2, seed=0))
    enc = feat.open_encoder(tiny_encoder, "gray", 1)
    monkeypatch.setattr(feat, "CHUNK", 4)  # 14 images -> 4 parts
    cache = feat.cached_features(data, enc, tmp_path / "cache", progress=False)
    imgs = [read_image(p) for p in data.paths]
    np.testing.assert_allclose(cache.plain, feat.encode(enc, imgs), atol=1e-6)
    np.testing.assert_allclose(cache.flipped, feat.encode(enc, [im[:, ::-1].copy() for im in imgs]), atol=1e-6)
    assert not np.allclose(cache.plain, cache.flipped)
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(files) == 2 and not any("part" in f for f in files)  # parts merged and removed

    # an interrupted run leaves parts; the next run reuses them (here: a part with marker values)
    for f in (tmp_path / "cache").iterdir():
        f.unlink()
    stem = tmp_path / "cache" / f"{data.name.replace(':', '-')}-{feat._key(data, enc)}"
    marker = np.full((4, cache.dim), 7.0, np.float32)
    np.save(f"{stem}.plain.npy.part0000.npy", marker)
    again = feat.cached_features(data, enc, tmp_path / "cache", mirrored=False, progress=False)
    assert again.flipped is None
    np.testing.assert_array_equal(again.plain[:4], marker)
    np.testing.assert_allclose(again.plain[4:], cache.plain[4:], atol=1e-6)


def test_cache_key_depends_on_encoder_colour(tmp_path, tiny_encoder):
    data = load_ferplus(make_ferplus(tmp_path / "d", per_class=1, seed=0))
    gray = feat.open_encoder(tiny_encoder, "gray", 1)
    rgb = feat.open_encoder(tiny_encoder, "rgb", 1)
    assert feat._key(data, gray) != feat._key(data, rgb)
