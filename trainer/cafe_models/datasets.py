"""Dataset loaders: each turns one on-disk layout into a `FaceSet` (image paths + canonical labels).

Layouts, as written on the command line (`layout:path`):
  ferplus:DIR        FERPlus split folder: DIR/label.csv (no header: file, box, 10 votes) + DIR/<file>
  rafdb:DIR          RAF-DB basic: DIR/EmoLabel/list_patition_label.txt + DIR/Image/aligned/<stem>_aligned.jpg
                     (rafdb-train:/rafdb-test: pick the split; plain rafdb: takes the caller's default)
  affectnet:CSV      AffectNet CSV with columns subDirectory_filePath, expression (+ optional face_x, face_y,
                     face_width, face_height); image paths relative to the CSV's folder
  folder:DIR         DIR/<class name>/*.jpg|png|...; names and synonyms in classes.CLASS_NAMES
  csv:FILE           `path,label` rows (optional header); label = class name or canonical index; paths
                     relative to the CSV's folder
  taiwanese:DIR      the Taiwanese posed set: DIR/PPTVEnn.jpg, expression = 5th character (a neutral,
                     b happiness, c sadness, d anger, e disgust, f fear, g surprise; '0' unlabelled, skipped),
                     group = performer PP; whole uncropped photos
  detections:CSV     the crops CSV of `cafe-stream evaluate --save-crops`: source image, label, group and the
                     product detector's box per row; the image is cropped the way the pipeline crops it
                     (facecrop.render_crop), so training and evaluation see the deployed framing. Rows without a
                     box (no face found) are dropped and counted in `FaceSet.missing`.

Any spec may end in `@train`, `@val` or `@test`: the set's groups (performers, subjects) are split into
disjoint parts (GROUP_SPLIT of the groups, by a fixed seed) and only that part is loaded, so one person
never appears on both sides of a train/selection/test boundary.

Images are only opened by `read_image`; loaders check the index files and that every image file exists,
and raise `DatasetError` naming the path when something is missing or malformed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .classes import CLASS_NAMES, CLASSES, FERPLUS_VOTE_COLUMNS, NUM_CLASSES, class_from_name, map_label

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
FERPLUS_PROTOCOLS = ("majority", "argmax", "msft")
LAYOUTS = ("ferplus", "rafdb", "rafdb-train", "rafdb-test", "affectnet", "folder", "csv", "taiwanese", "detections")
SPLIT_PARTS = ("train", "val", "test")
GROUP_SPLIT = (0.5, 0.2, 0.3)  # shares of the groups in train / val / test
GROUP_SPLIT_SEED = 20241001


class DatasetError(ValueError):
    """A dataset path is missing or its index is malformed. The message names the path."""


Box = tuple[int, int, int, int]  # x, y, width, height in pixels


@dataclass
class FaceSet:
    name: str
    paths: list[Path]
    labels: np.ndarray  # (N,) int64 canonical indices
    soft: np.ndarray | None = None  # (N, 7) float32 vote distributions, FERPlus only
    boxes: list[Box | None] = field(default_factory=list)
    # person (performer / subject) of each sample, "" when unknown: the unit of a disjoint split
    groups: list[str] = field(default_factory=list)
    # the detector's box per sample when the image is to be framed as the pipeline frames it (detections
    # layout); `boxes` then stays None (no plain crop)
    detections: list[tuple[float, float, float, float] | None] = field(default_factory=list)
    missing: int = 0  # samples listed but dropped because no face was found

    def __post_init__(self) -> None:
        n = len(self.paths)
        self.boxes = self.boxes or [None] * n
        self.groups = self.groups or [""] * n
        self.detections = self.detections or [None] * n
        if not (n == len(self.labels) == len(self.boxes) == len(self.groups) == len(self.detections)):
            raise ValueError("paths, labels, boxes, groups and detections must have the same length")

    def __len__(self) -> int:
        return len(self.paths)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=NUM_CLASSES)
        return {c: int(n) for c, n in zip(CLASSES, counts)}

    def subset(self, idx: np.ndarray) -> "FaceSet":
        return FaceSet(
            self.name,
            [self.paths[i] for i in idx],
            self.labels[idx],
            None if self.soft is None else self.soft[idx],
            [self.boxes[i] for i in idx],
            [self.groups[i] for i in idx],
            [self.detections[i] for i in idx],
        )


def _require_dir(path: Path, what: str) -> Path:
    if not path.exists():
        raise DatasetError(f"{path}: {what} not found")
    if not path.is_dir():
        raise DatasetError(f"{path}: {what} is not a directory")
    return path


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"{path}: {what} not found")
    return path


def _check_images_exist(paths: list[Path], index: Path) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:3])
        raise DatasetError(f"{index}: {len(missing)} listed image(s) missing, e.g. {shown}")


def _finish(name: str, paths: list[Path], labels: list[int], index: Path, **kw) -> FaceSet:
    if not paths:
        raise DatasetError(f"{index}: no usable samples (none of the seven classes)")
    _check_images_exist(paths, index)
    return FaceSet(name, paths, np.asarray(labels, dtype=np.int64), **kw)


# ---------------------------------------------------------------- FERPlus

def ferplus_label(votes: np.ndarray, protocol: str = "majority") -> int | None:
    """Vote column index chosen by `protocol`, or None when the sample is dropped.

    majority: the column with the most votes; ties for the top are dropped.
    argmax:   the column with the most votes, ties to the first column (np.argmax); this gives the counts in
              shared/README.md (28,217 train images).
    msft:     Microsoft's FERPlus 'majority' mode: single votes are removed as outliers, then the top column
              needs more than half of the remaining votes.
    Contempt, unknown and not-a-face winners are dropped by the caller's label map, not here.
    """
    v = np.asarray(votes, dtype=np.float64)
    if protocol == "majority":
        top = np.flatnonzero(v == v.max())
        return int(top[0]) if len(top) == 1 and v.max() > 0 else None
    if protocol == "argmax":
        return int(np.argmax(v)) if v.max() > 0 else None
    if protocol == "msft":
        v = np.where(v <= 1, 0.0, v)
        total = v.sum()
        return int(np.argmax(v)) if total > 0 and v.max() > 0.5 * total else None
    raise ValueError(f"unknown FERPlus protocol {protocol!r}; use one of {FERPLUS_PROTOCOLS}")


def ferplus_soft(votes: np.ndarray) -> np.ndarray:
    """Vote distribution over the seven kept classes, in canonical order (contempt/unknown/NF votes ignored)."""
    out = np.zeros(NUM_CLASSES, dtype=np.float32)
    for col, cls in ((c, map_label("ferplus", c)) for c in range(len(FERPLUS_VOTE_COLUMNS))):
        if cls is not None:
            out[cls] = votes[col]
    total = out.sum()
    return out / total if total > 0 else out


def load_ferplus(root: str | Path, protocol: str = "majority") -> FaceSet:
    root = _require_dir(Path(root), "FERPlus folder")
    index = _require_file(root / "label.csv", "FERPlus label.csv")
    if protocol not in FERPLUS_PROTOCOLS:
        raise ValueError(f"unknown FERPlus protocol {protocol!r}; use one of {FERPLUS_PROTOCOLS}")
    paths, labels, soft, boxes = [], [], [], []
    with open(index, newline="") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if not row:
                continue
            if len(row) != 2 + len(FERPLUS_VOTE_COLUMNS):
                raise DatasetError(f"{index}:{lineno}: expected 12 columns (file, box, 10 votes), got {len(row)}")
            try:
                votes = np.array([int(x) for x in row[2:]], dtype=np.int64)
                box = tuple(int(x) for x in row[1].strip("()[] ").split(","))
            except ValueError as e:
                raise DatasetError(f"{index}:{lineno}: malformed box or votes ({e})") from None
            if len(box) != 4 or (votes < 0).any():
                raise DatasetError(f"{index}:{lineno}: malformed box or negative votes")
            col = ferplus_label(votes, protocol)
            cls = None if col is None else map_label("ferplus", col)
            if cls is None:
                continue
            paths.append(root / row[0])
            labels.append(cls)
            soft.append(ferplus_soft(votes))
            boxes.append(box)
    return _finish(f"ferplus:{root.name}", paths, labels, index, soft=np.stack(soft) if soft else None,
                   boxes=boxes)


# ---------------------------------------------------------------- RAF-DB

def load_rafdb(root: str | Path, split: str = "test") -> FaceSet:
    if split not in ("train", "test"):
        raise ValueError(f"RAF-DB split must be train or test, got {split!r}")
    root = _require_dir(Path(root), "RAF-DB folder")
    index = _require_file(root / "EmoLabel" / "list_patition_label.txt", "RAF-DB label list")
    images = _require_dir(root / "Image" / "aligned", "RAF-DB aligned image folder")
    paths, labels = [], []
    for lineno, line in enumerate(index.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].isdigit():
            raise DatasetError(f"{index}:{lineno}: expected `<file> <label 1..7>`, got {line!r}")
        name, native = parts
        if not name.startswith(split):
            continue
        cls = map_label("rafdb", int(native))
        if cls is None:
            raise DatasetError(f"{index}:{lineno}: label {native} outside 1..7")
        paths.append(images / f"{Path(name).stem}_aligned.jpg")
        labels.append(cls)
    return _finish(f"rafdb:{split}", paths, labels, index)


# ---------------------------------------------------------------- AffectNet

def load_affectnet(csv_path: str | Path) -> FaceSet:
    index = _require_file(Path(csv_path), "AffectNet CSV")
    base = index.parent
    paths, labels, boxes = [], [], []
    with open(index, newline="") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or [])
        if not {"subDirectory_filePath", "expression"} <= cols:
            raise DatasetError(f"{index}: needs columns subDirectory_filePath and expression, has {sorted(cols)}")
        has_box = {"face_x", "face_y", "face_width", "face_height"} <= cols
        for lineno, row in enumerate(reader, 2):
            try:
                native = int(row["expression"])
                box = (tuple(int(float(row[k])) for k in ("face_x", "face_y", "face_width", "face_height"))
                       if has_box else None)
            except (TypeError, ValueError):
                raise DatasetError(f"{index}:{lineno}: malformed expression or face box") from None
            cls = map_label("affectnet", native)
            if cls is None:
                continue  # 7 contempt, 8 none, 9 uncertain, 10 no-face
            paths.append(base / row["subDirectory_filePath"])
            labels.append(cls)
            boxes.append(box)
    return _finish(f"affectnet:{index.stem}", paths, labels, index, boxes=boxes)


# ---------------------------------------------------------------- class-named folders

def load_folder(root: str | Path) -> FaceSet:
    root = _require_dir(Path(root), "image folder")
    paths, labels = [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        cls = class_from_name(sub.name)
        if cls is None:
            continue  # e.g. contempt/: not one of the seven
        for p in sorted(sub.rglob("*")):
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                paths.append(p)
                labels.append(cls)
    if not paths:
        raise DatasetError(f"{root}: no images under class-named sub-folders "
                           f"(expected e.g. happy/, sad/, neutral/; known names: {sorted(CLASS_NAMES)})")
    return FaceSet(f"folder:{root.name}", paths, np.asarray(labels, dtype=np.int64))


# ---------------------------------------------------------------- path,label CSV

def load_csv(csv_path: str | Path) -> FaceSet:
    index = _require_file(Path(csv_path), "label CSV")
    base = index.parent
    paths, labels = [], []
    with open(index, newline="") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 2:
                raise DatasetError(f"{index}:{lineno}: expected `path,label`, got {row!r}")
            path, label = row[0].strip(), row[1].strip()
            if lineno == 1 and path.lower() == "path":
                continue  # header
            if label.isdigit():
                cls = map_label("canonical", int(label))
                if cls is None:
                    raise DatasetError(f"{index}:{lineno}: numeric label {label} outside 0..6 (canonical order "
                                       f"{', '.join(CLASSES)})")
            else:
                cls = class_from_name(label)
                if cls is None:
                    continue  # a named class outside the seven (contempt ...) is dropped
            p = Path(path)
            paths.append(p if p.is_absolute() else base / p)
            labels.append(cls)
    return _finish(f"csv:{index.stem}", paths, labels, index)


# ---------------------------------------------------------------- Taiwanese posed set

TAIWANESE_CODES = {"a": "neutral", "b": "happiness", "c": "sadness", "d": "anger", "e": "disgust", "f": "fear",
                   "g": "surprise"}


def taiwanese_label(name: str) -> int | None:
    """Canonical class of a `PPTVEnn.jpg` file name (5th character), None when unlabelled ('0')."""
    code = name[4:5].lower()
    return class_from_name(TAIWANESE_CODES[code]) if code in TAIWANESE_CODES else None


def load_taiwanese(root: str | Path) -> FaceSet:
    root = _require_dir(Path(root), "Taiwanese image folder")
    paths, labels, groups = [], [], []
    for p in sorted(root.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES or len(p.stem) < 5:
            continue
        cls = taiwanese_label(p.name)
        if cls is None:
            continue
        paths.append(p)
        labels.append(cls)
        groups.append(p.name[:2])
    return _finish(f"taiwanese:{root.name}", paths, labels, root, groups=groups)


# ---------------------------------------------------------------- product-path detections

DETECTION_COLUMNS = ("source", "label", "box_x", "box_y", "box_w", "box_h")


def load_detections(csv_path: str | Path) -> FaceSet:
    index = _require_file(Path(csv_path), "crops CSV")
    paths, labels, groups, dets, missing = [], [], [], [], 0
    with open(index, newline="") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or [])
        if not set(DETECTION_COLUMNS) <= cols:
            raise DatasetError(f"{index}: needs columns {', '.join(DETECTION_COLUMNS)} (a crops.csv from "
                               f"`cafe-stream evaluate --save-crops`), has {sorted(cols)}")
        for lineno, row in enumerate(reader, 2):
            cls = class_from_name(row["label"] or "")
            if cls is None:
                continue
            if not row["box_x"]:
                missing += 1
                continue
            try:
                box = tuple(float(row[k]) for k in ("box_x", "box_y", "box_w", "box_h"))
            except ValueError:
                raise DatasetError(f"{index}:{lineno}: malformed box") from None
            if box[2] <= 0 or box[3] <= 0:
                raise DatasetError(f"{index}:{lineno}: empty box")
            p = Path(row["source"])
            paths.append(p if p.is_absolute() else index.parent / p)
            labels.append(cls)
            groups.append(row.get("group") or "")
            dets.append(box)
    label = index.parent.name if index.stem == "crops" else index.stem
    fs = _finish(f"detections:{label}", paths, labels, index, groups=groups, detections=dets)
    fs.missing = missing
    return fs


# ---------------------------------------------------------------- group-disjoint parts

def group_split(groups: list[str], part: str, shares: tuple[float, float, float] = GROUP_SPLIT,
                seed: int = GROUP_SPLIT_SEED) -> np.ndarray:
    """Indices of the samples whose group falls in `part` (train / val / test). The groups, not the
    samples, are shuffled (by `seed`) and cut by `shares`, so the parts share no person."""
    if part not in SPLIT_PARTS:
        raise ValueError(f"unknown split part {part!r}; use one of {', '.join(SPLIT_PARTS)}")
    names = sorted(set(groups))
    if "" in names:
        raise DatasetError("a group split needs a group (person) for every sample; this set has none")
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    cut1 = round(len(order) * shares[0])
    cut2 = cut1 + round(len(order) * shares[1])
    chosen = set({"train": order[:cut1], "val": order[cut1:cut2], "test": order[cut2:]}[part])
    return np.array([i for i, g in enumerate(groups) if g in chosen], dtype=np.int64)


# ---------------------------------------------------------------- dispatch + pixels

def parse_spec(spec: str) -> tuple[str, str]:
    layout, sep, path = spec.partition(":")
    if not sep or not path or layout not in LAYOUTS:
        raise DatasetError(f"{spec!r}: expected LAYOUT:PATH with LAYOUT one of {', '.join(LAYOUTS)}")
    return layout, path


def split_part(spec: str) -> tuple[str, str | None]:
    """`layout:path@part` -> (`layout:path`, part); no suffix -> (spec, None)."""
    base, at, part = spec.rpartition("@")
    if at and part in SPLIT_PARTS:
        return base, part
    return spec, None


def load_set(spec: str, *, rafdb_split: str = "test", ferplus_protocol: str = "majority") -> FaceSet:
    """Load a `layout:path[@part]` set (see module docstring)."""
    base, part = split_part(spec)
    if part is not None:
        fs = load_set(base, rafdb_split=rafdb_split, ferplus_protocol=ferplus_protocol)
        sub = fs.subset(group_split(fs.groups, part))
        sub.name, sub.missing = f"{fs.name}@{part}", fs.missing
        return sub
    layout, path = parse_spec(spec)
    if layout == "ferplus":
        return load_ferplus(path, ferplus_protocol)
    if layout.startswith("rafdb"):
        return load_rafdb(path, layout.split("-")[1] if "-" in layout else rafdb_split)
    if layout == "affectnet":
        return load_affectnet(path)
    if layout == "folder":
        return load_folder(path)
    if layout == "taiwanese":
        return load_taiwanese(path)
    if layout == "detections":
        return load_detections(path)
    return load_csv(path)


def read_image(path: Path, box: Box | None = None) -> np.ndarray:
    """The image as an RGB uint8 array (H, W, 3), cropped to `box` (x, y, w, h) when one is given."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if box is not None:
                x, y, w, h = box
                if (x, y, w, h) != (0, 0, im.width, im.height):
                    im = im.crop((x, y, x + w, y + h))
            return np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read image ({e})") from None
