import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cafe_models.classes import CLASS_NAMES, CLASSES, LABEL_MAPS, class_from_name, map_label
from cafe_models.datasets import (DatasetError, ferplus_label, ferplus_soft, load_affectnet, load_csv,
                                  load_ferplus, load_folder, load_rafdb, load_set, read_image)


def _png(path: Path, value: int = 128, size=(8, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)


def test_canonical_order_matches_the_pipeline():
    assert CLASSES == ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")


@pytest.mark.parametrize("table,expected", [
    ("rafdb", {1: "surprise", 2: "fear", 3: "disgust", 4: "happiness", 5: "sadness", 6: "anger", 7: "neutral"}),
    ("ferplus", {0: "neutral", 1: "happiness", 2: "surprise", 3: "sadness", 4: "anger", 5: "disgust", 6: "fear"}),
    ("affectnet", {0: "neutral", 1: "happiness", 2: "sadness", 3: "surprise", 4: "fear", 5: "disgust", 6: "anger"}),
    ("alphabetical", {0: "anger", 1: "disgust", 2: "fear", 3: "happiness", 4: "neutral", 5: "sadness",
                      6: "surprise"}),
])
def test_every_label_map_entry(table, expected):
    assert {k: CLASSES[v] for k, v in LABEL_MAPS[table].items()} == expected


def test_dropped_native_ids():
    assert map_label("ferplus", 7) is None and map_label("ferplus", 8) is None and map_label("ferplus", 9) is None
    assert map_label("affectnet", 7) is None and map_label("affectnet", 10) is None


def test_every_class_name_and_synonym():
    expected = {"surprise": 0, "surprised": 0, "fear": 1, "fearful": 1, "afraid": 1, "scared": 1, "disgust": 2,
                "disgusted": 2, "happiness": 3, "happy": 3, "sadness": 4, "sad": 4, "anger": 5, "angry": 5,
                "neutral": 6}
    assert CLASS_NAMES == expected
    assert class_from_name(" Happy ") == 3 and class_from_name("contempt") is None


def test_ferplus_protocols():
    tie = np.array([4, 4, 2, 0, 0, 0, 0, 0, 0, 0])
    assert ferplus_label(tie, "majority") is None
    assert ferplus_label(tie, "argmax") == 0
    clear = np.array([1, 6, 1, 1, 0, 0, 0, 0, 1, 0])
    assert ferplus_label(clear, "majority") == 1 and ferplus_label(clear, "msft") == 1
    # msft: single votes removed, then the top needs > half: 3 of (3 + 3 + 2) is not enough
    weak = np.array([3, 3, 2, 1, 1, 0, 0, 0, 0, 0])
    assert ferplus_label(weak, "msft") is None
    assert ferplus_label(np.array([5, 2, 2, 1, 0, 0, 0, 0, 0, 0]), "msft") == 0
    # soft: vote distribution over the kept seven, canonical order; contempt/unknown/NF ignored
    soft = ferplus_soft(np.array([2, 4, 0, 0, 0, 0, 2, 1, 1, 0]))
    assert soft.tolist() == pytest.approx([0, 0.25, 0, 0.5, 0, 0, 0.25])


def _ferplus(root: Path, rows) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "label.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    for r in rows:
        _png(root / r[0])
    return root


def test_load_ferplus_majority_drops_contempt_unknown_nf_and_ties(tmp_path):
    box = "(0, 0, 8, 8)"
    rows = [[f"f{i}.png", box, *votes] for i, votes in enumerate([
        [0, 0, 9, 0, 0, 0, 1, 0, 0, 0],  # surprise
        [0, 0, 0, 0, 0, 0, 0, 7, 3, 0],  # contempt -> dropped
        [0, 0, 0, 0, 0, 0, 0, 0, 9, 1],  # unknown -> dropped
        [1, 0, 0, 0, 0, 0, 0, 0, 0, 9],  # not a face -> dropped
        [5, 5, 0, 0, 0, 0, 0, 0, 0, 0],  # tie -> dropped
        [0, 0, 0, 0, 0, 8, 2, 0, 0, 0],  # disgust
    ])]
    fs = load_ferplus(_ferplus(tmp_path / "Train", rows))
    assert [p.name for p in fs.paths] == ["f0.png", "f5.png"]
    assert [CLASSES[i] for i in fs.labels] == ["surprise", "disgust"]
    assert fs.soft.shape == (2, 7) and fs.soft[0].tolist() == pytest.approx([0.9, 0.1, 0, 0, 0, 0, 0])
    assert len(load_ferplus(tmp_path / "Train", "argmax")) == 3  # the tie goes to neutral


def test_load_ferplus_errors_name_the_path(tmp_path):
    with pytest.raises(DatasetError, match=str(tmp_path / "nope")):
        load_ferplus(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="label.csv"):
        load_ferplus(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "label.csv").write_text("f.png,(0, 0, 8, 8),1,2\n")
    with pytest.raises(DatasetError, match=r"label.csv:1: expected 12 columns"):
        load_ferplus(bad)
    gone = tmp_path / "gone"
    gone.mkdir()
    (gone / "label.csv").write_text("missing.png,\"(0, 0, 8, 8)\",9,0,0,0,0,0,0,0,0,0\n")
    with pytest.raises(DatasetError, match="missing.png"):
        load_ferplus(gone)


def test_load_rafdb_splits_and_labels(tmp_path):
    (tmp_path / "EmoLabel").mkdir()
    lines = [f"train_{i:05d}.jpg {i}" for i in range(1, 8)] + ["test_0001.jpg 7", "test_0002.jpg 1"]
    (tmp_path / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    for line in lines:
        _png(tmp_path / "Image" / "aligned" / f"{line.split('.')[0]}_aligned.jpg")
    train = load_rafdb(tmp_path, "train")
    assert [CLASSES[i] for i in train.labels] == list(CLASSES)
    test = load_set(f"rafdb:{tmp_path}")
    assert [CLASSES[i] for i in test.labels] == ["neutral", "surprise"]
    assert len(load_set(f"rafdb-train:{tmp_path}")) == 7


def test_load_affectnet_maps_ids_and_drops_contempt_and_beyond(tmp_path):
    rows = [["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "expression"]]
    for i in range(11):
        rows.append([f"1/{i}.png", 1, 1, 4, 4, i])
        _png(tmp_path / "1" / f"{i}.png")
    with open(tmp_path / "a.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    fs = load_affectnet(tmp_path / "a.csv")
    assert [CLASSES[i] for i in fs.labels] == ["neutral", "happiness", "sadness", "surprise", "fear", "disgust",
                                               "anger"]
    assert fs.boxes[0] == (1, 1, 4, 4)
    assert read_image(fs.paths[0], fs.boxes[0]).shape == (4, 4, 3)


def test_load_folder_accepts_synonyms_and_skips_other_classes(tmp_path):
    for name in ["happy", "Angry", "sadness", "surprised", "fearful", "disgusted", "neutral", "contempt"]:
        _png(tmp_path / name / "a.png")
    fs = load_folder(tmp_path)
    assert sorted(CLASSES[i] for i in fs.labels) == sorted(CLASSES)
    with pytest.raises(DatasetError, match="no images"):
        load_folder(tmp_path / "contempt")


def test_load_csv_names_and_indices(tmp_path):
    _png(tmp_path / "x.png")
    (tmp_path / "l.csv").write_text("path,label\nx.png,happy\nx.png,6\nx.png,contempt\nx.png,Surprise\n")
    fs = load_csv(tmp_path / "l.csv")
    assert [CLASSES[i] for i in fs.labels] == ["happiness", "neutral", "surprise"]
    (tmp_path / "bad.csv").write_text("x.png,9\n")
    with pytest.raises(DatasetError, match="outside 0..6"):
        load_csv(tmp_path / "bad.csv")


def test_bad_spec():
    with pytest.raises(DatasetError, match="LAYOUT:PATH"):
        load_set("imagenet:/x")
