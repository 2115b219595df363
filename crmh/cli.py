"""``crmh predict``: reconstruct the people in images and write files people can open.

    crmh predict photo.jpg folder/ 'shots/*.png' --model models/full/model.pt --out out/

INPUT is image files, folders (searched recursively for images, in sorted order) or
globs. Per image it writes the formats of ``--formats`` (:mod:`crmh.exports`) and a line
of ``predictions.jsonl``; it shows a progress bar with images/s and ends with a summary.
A file that cannot be read as an image is reported with its path, counted and skipped;
the exit status is 1 when every input failed.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path

import yaml
from tqdm import tqdm

from crmh.exports import (
    FORMATS,
    summary_line,
    write_glb,
    write_npz,
    write_obj,
    write_overlay,
    write_views,
)
from crmh.images import IMAGE_SUFFIXES, BadImage, load_image
from crmh.predictor import Prediction, Predictor
from model.io import read_model
from pipelines.refine import RefineConfig

__all__ = ["main", "expand_inputs"]

DEFAULT_FORMATS = ("npz", "glb", "overlay", "views")


def expand_inputs(inputs: list[str]) -> list[tuple[Path, str]]:
    """``(path, output name)`` per image: files as given, folders searched recursively
    (image suffixes only, sorted; the name keeps the sub-folders), globs expanded."""
    found: list[tuple[Path, str]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
                found.append((file, str(file.relative_to(path).with_suffix(""))))
        elif path.exists():
            found.append((path, path.stem))
        else:
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:  # kept, so it is reported as missing
                matches = [item]
            found.extend((Path(m), Path(m).stem) for m in matches)
    return found


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crmh", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="reconstruct the people in images")
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="images, folders or globs")
    predict.add_argument("--model", default="models/full/model.pt", help="a trained model.pt")
    predict.add_argument("--out", required=True, help="output folder")
    predict.add_argument("--device", default="auto", help="auto (CUDA when there), cpu, cuda")
    predict.add_argument("--score", type=float, default=0.5, help="detection score threshold")
    predict.add_argument("--batch", type=int, default=1, help="images per network call")
    predict.add_argument("--input-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                         help="network input (default: the model's)")
    camera = predict.add_mutually_exclusive_group()
    camera.add_argument("--focal", type=float, help="focal length, pixels of the image")
    camera.add_argument("--fov", type=float, help="horizontal field of view, degrees")
    predict.add_argument("--formats", nargs="+", default=list(DEFAULT_FORMATS),
                         choices=FORMATS, help="files to write per image")
    predict.add_argument("--smpl", help="the SMPL model file, for a model trained with SMPL")
    predict.add_argument("--refine", action="store_true",
                         help="test-time coherence refinement: the model file's settings, "
                              "else the refine section of --params")
    predict.add_argument("--params", default="params.yaml",
                         help="params.yaml whose refine section --refine uses when the "
                              "model file carries none")
    return parser


def _refine_config(args: argparse.Namespace) -> RefineConfig | bool | None:
    """``None`` (as the model file says), ``True`` (the model file's settings) or the
    settings of ``--params`` when the model file has none."""
    if not args.refine:
        return None
    if "refine" in read_model(args.model):
        return True
    path = Path(args.params)
    if not path.is_file():
        raise SystemExit(f"--refine: {args.model} carries no refine settings and {path} "
                         "does not exist (give --params with a refine section)")
    try:
        return RefineConfig.from_section(yaml.safe_load(path.read_text()).get("refine", {}),
                                         str(path))
    except ValueError as error:
        raise SystemExit(f"--refine: {error}") from error


def _write(predictor: Predictor, prediction: Prediction, image, out: Path, name: str,
           formats: list[str]) -> None:
    target = out / name
    target.parent.mkdir(parents=True, exist_ok=True)
    faces = predictor.faces
    if "npz" in formats:
        write_npz(target.with_suffix(".npz"), prediction, predictor.body.name,
                  predictor.model_sha256)
    if "glb" in formats:
        write_glb(target.with_suffix(".glb"), prediction, faces)
    if "obj" in formats:
        write_obj(target.parent, target.name, prediction, faces)
    if "overlay" in formats:
        write_overlay(target.parent / f"{target.name}_overlay.png", image, prediction, faces)
    if "views" in formats:
        write_views(target.parent / f"{target.name}_views.png", image, prediction, faces)


def predict(args: argparse.Namespace) -> int:
    try:
        predictor = Predictor(args.model, args.device, args.score,
                              tuple(args.input_size) if args.input_size else None, args.smpl,
                              refine=_refine_config(args))
    except ValueError as error:  # a model file we cannot use, said plainly
        raise SystemExit(f"crmh predict: {error}") from error
    inputs = expand_inputs(args.inputs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    people = failed = 0
    start = time.perf_counter()
    with open(out / "predictions.jsonl", "w") as lines:
        progress = tqdm(range(0, len(inputs), args.batch), unit="batch", mininterval=1.0)
        for first in progress:
            chunk, images = inputs[first:first + args.batch], []
            for path, name in chunk:
                try:
                    images.append((path, name, load_image(path)))
                except BadImage as error:
                    failed += 1
                    tqdm.write(f"skipped: {error}")
                    lines.write(summary_line(str(path), None, str(error)) + "\n")
            if not images:
                continue
            predictions = predictor.predict_batch([i[2] for i in images], args.focal, args.fov)
            for (path, name, image), prediction in zip(images, predictions, strict=True):
                _write(predictor, prediction, image, out, name, args.formats)
                lines.write(summary_line(str(path), prediction) + "\n")
                people += len(prediction.people)
            done = first + len(chunk)
            progress.set_postfix(images_per_s=f"{done / (time.perf_counter() - start):.2f}")
    succeeded = len(inputs) - failed
    print(f"{succeeded} images, {people} people, {failed} failed "
          f"({out / 'predictions.jsonl'})")
    return 1 if inputs and succeeded == 0 else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return predict(args)


if __name__ == "__main__":
    sys.exit(main())
