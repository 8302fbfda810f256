"""scripts/ferplus_pack.py: the FER+ pack carried to a lent GPU decodes to the same pixels and label rows, and keeps
only the samples the majority protocol keeps."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from cafe_models.datasets import load_set

spec = importlib.util.spec_from_file_location("ferplus_pack", Path(__file__).parents[1] / "scripts" / "ferplus_pack.py")
ferplus_pack = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ferplus_pack)


def test_predictor_round_trip_is_exact_on_extremes():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 48, 48), dtype=np.uint8)
    images[0] = 0
    images[1] = 255
    images[2, ::2] = 255  # stripes: every branch of the median predictor
    assert np.array_equal(ferplus_pack.decode(ferplus_pack.encode(images)), images)


def _split(root: Path, name: str, votes: list[list[int]], rng) -> None:
    d = root / name
    d.mkdir(parents=True)
    with open(d / "label.csv", "w", newline="") as f:
        w = csv.writer(f)
        for i, v in enumerate(votes):
            Image.fromarray(rng.integers(0, 256, size=(48, 48), dtype=np.uint8)).save(d / f"fer{i:07d}.png")
            w.writerow([f"fer{i:07d}.png", "(0, 0, 48, 48)", *v])


def test_pack_unpack_keeps_majority_samples_pixels_and_rows(tmp_path):
    rng = np.random.default_rng(1)
    clear_happy = [0, 8, 0, 0, 0, 0, 0, 0, 2, 0]
    tie = [5, 5, 0, 0, 0, 0, 0, 0, 0, 0]
    contempt = [0, 0, 0, 0, 0, 0, 0, 9, 1, 0]
    _split(tmp_path / "src", "FER2013Train", [clear_happy, tie, contempt, clear_happy], rng)
    _split(tmp_path / "src", "FER2013Valid", [tie, clear_happy], rng)
    ferplus_pack.pack(tmp_path / "src", tmp_path / "p.xz", "majority", None)
    ferplus_pack.unpack(tmp_path / "p.xz", tmp_path / "out")
    for split, kept in (("FER2013Train", ["fer0000000.png", "fer0000003.png"]), ("FER2013Valid", ["fer0000001.png"])):
        src, out = tmp_path / "src" / split, tmp_path / "out" / split
        assert sorted(p.name for p in out.glob("*.png")) == kept
        src_rows = {r[0]: r for r in csv.reader(open(src / "label.csv"))}
        assert list(csv.reader(open(out / "label.csv"))) == [src_rows[k] for k in kept]
        for k in kept:
            assert np.array_equal(np.asarray(Image.open(out / k)), np.asarray(Image.open(src / k)))
        a, b = load_set(f"ferplus:{src}"), load_set(f"ferplus:{out}")
        assert [Path(p).name for p in a.paths] == [Path(p).name for p in b.paths]
        assert np.array_equal(a.labels, b.labels)
