"""Trainer benchmark: `python bench.py [--image-size 64] [--threads 2]` (same as `trainer bench`)."""

import sys

from cafe_train.main import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
