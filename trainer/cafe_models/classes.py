"""The canonical class order and every dataset's mapping to it, in one table.

The order is RAF-DB's (labels 1..7 minus 1), which is also the order of CAFE's channel-separation groups:
group g of the encoder feature belongs to class g. `src/types.ts` (EXPRESSIONS) uses the same order.
"""

from __future__ import annotations

CLASSES: tuple[str, ...] = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
NUM_CLASSES = len(CLASSES)

# FERPlus label.csv vote columns, in file order (after `file, box`).
FERPLUS_VOTE_COLUMNS: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF",
)

# dataset-native label -> canonical index. A native label that is absent here (contempt, unknown, not-a-face,
# AffectNet 7+ ...) is dropped by the loaders. Tested entry by entry in tests/test_datasets.py.
LABEL_MAPS: dict[str, dict[int, int]] = {
    # RAF-DB basic, EmoLabel/list_patition_label.txt: 1 Surprise .. 7 Neutral
    "rafdb": {1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 6},
    # FERPlus vote column index (FERPLUS_VOTE_COLUMNS); 7 contempt, 8 unknown, 9 NF dropped
    "ferplus": {0: 6, 1: 3, 2: 0, 3: 4, 4: 5, 5: 2, 6: 1},
    # AffectNet `expression`: 0 Neutral 1 Happy 2 Sad 3 Surprise 4 Fear 5 Disgust 6 Anger; 7 Contempt, 8+ dropped
    "affectnet": {0: 6, 1: 3, 2: 4, 3: 0, 4: 1, 5: 2, 6: 5},
    # alphabetical ids used by SFEW2.0 / MMA label files: 0 Angry 1 Disgust 2 Fear 3 Happy 4 Neutral 5 Sad 6 Surprise
    "alphabetical": {0: 5, 1: 2, 2: 1, 3: 3, 4: 6, 5: 4, 6: 0},
    # `csv` layout numeric labels are already canonical
    "canonical": {i: i for i in range(NUM_CLASSES)},
}

# Folder / CSV class names (lower-cased) -> canonical index. Contempt and the like are deliberately absent.
CLASS_NAMES: dict[str, int] = {
    "surprise": 0, "surprised": 0,
    "fear": 1, "fearful": 1, "afraid": 1, "scared": 1,
    "disgust": 2, "disgusted": 2,
    "happiness": 3, "happy": 3,
    "sadness": 4, "sad": 4,
    "anger": 5, "angry": 5,
    "neutral": 6,
}


def map_label(table: str, native: int) -> int | None:
    """Canonical index for a dataset-native id, or None when that class is not one of the seven."""
    return LABEL_MAPS[table].get(int(native))


def class_from_name(name: str) -> int | None:
    """Canonical index for a class name or synonym (case-insensitive), or None if it is not one of the seven."""
    return CLASS_NAMES.get(name.strip().lower())
