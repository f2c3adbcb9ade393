"""Benchmark: FlexUNet throughput and agreement on every inference backend geoseg offers.

Runs one model on the same tiles through :class:`geoseg.model.inference.KerasPredictor` in float32
(the reference) and bfloat16, and through the converted backends of :mod:`geoseg.model.runtimes`
(conversions made by :func:`geoseg.model.convert.converted_model`, cached next to the model): ONNX
Runtime float32 and int8 (static QDQ quantisation, calibrated on ``--calibration`` tiles that
are not timed nor scored), OpenVINO float32 and bfloat16 (OpenVINO's own default on a CPU with
AVX512-BF16), OpenVINO int8 quantised by NNCF (:func:`geoseg.model.quantize.int8_model`; ``pip
install 'geoseg[int8]'``, skipped without it) on the same calibration tiles, with every convolution
in int8 and with the first left in float32 (what ``geoseg quantize`` makes), LiteRT float32
(XNNPACK); ``--xla`` adds Keras with XLA. For each it
prints tiles/s (best of ``--repeats`` passes, wall clock, the model already loaded: library
calls, not whole CLI runs), its speed relative to float32 Keras (the median, over rounds in
which every backend runs once in turn, of the ratio of their times: the load of a shared
machine weighs on both alike), CPU time per tile, how far its landslide masks (argmax) are from
float32 Keras': ``1 - IoU``, and with ``--dataset`` the landslide IoU against the truth.

Tiles: a synthetic scene (:func:`geoseg.labels.synthetic.make_scene`) by default; with ``--dataset``
the ``valid/`` tiles of a reference-layout dataset (``images/*.png`` and RGB ``masks/*.png``,
red = landslide), cut into tiles of the model's size, and calibration tiles from ``train/``.
Use a trained model: with an untrained one most pixels are coin tosses.

The machine's load and CPU flags are printed first; then the int8 version geoseg makes against
OpenVINO float32 (the default backend's float32, what int8 replaces by default on a CPU with
VNNI or AMX); the last line names the fastest backend whose landslide IoU stays within 0.005 of
float32 Keras.

    python bench/inference_speed.py                              # the bundled demo model
    python bench/inference_speed.py --model m.keras --dataset ../shared/data/hokkaido-iburi
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

IOU_TOLERANCE = 0.005


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux), empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def scene_tiles(count: int, tile: int, seed: int) -> np.ndarray:
    """``count`` tiles (n, tile, tile, 3) float32 of a synthetic scene, row by row."""
    from geoseg.labels.synthetic import make_scene

    side = tile * int(np.ceil(np.sqrt(count)))
    image = make_scene(side, side, seed=seed).image
    tiles = [image[:, r : r + tile, c : c + tile].transpose(1, 2, 0)
             for r in range(0, side, tile) for c in range(0, side, tile)]
    return np.stack(tiles[:count]).astype(np.float32)


def dataset_tiles(folder: Path, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """Tiles ``(n, tile, tile, 3)`` float32 of a dataset folder's images and their landslide
    truth ``(n, tile, tile)`` bool (red mask pixels)."""
    import rasterio

    images, truths = [], []
    for image_path in sorted((folder / "images").glob("*.png")):
        with rasterio.open(image_path) as src:
            image = src.read([1, 2, 3]).transpose(1, 2, 0).astype(np.float32)
        with rasterio.open(folder / "masks" / image_path.name) as src:
            mask = src.read()
        truth = (mask[0] == 255) & (mask[1] == 0) & (mask[2] == 0)
        for row in range(0, image.shape[0] - tile + 1, tile):
            for col in range(0, image.shape[1] - tile + 1, tile):
                images.append(image[row : row + tile, col : col + tile])
                truths.append(truth[row : row + tile, col : col + tile])
    return np.stack(images), np.stack(truths)


def int8_onnx(onnx_path: Path, calibration: np.ndarray, out: Path) -> Path:
    """A static int8 (QDQ, per-channel weights) quantisation of an ONNX model."""
    import onnxruntime
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = onnxruntime.InferenceSession(str(onnx_path)).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{name: calibration[i : i + 1]} for i in range(len(calibration))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    prepared = out.with_name("prepared.onnx")
    quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True)
    return out


def nncf_int8(onnx_path: Path, calibration: np.ndarray, out: Path, float_convs: int) -> Path:
    """An OpenVINO model quantised to int8 by NNCF (:func:`geoseg.model.quantize.int8_model`, what
    ``geoseg quantize`` runs with ``float_convs=1``), saved as ``out``."""
    import openvino

    from geoseg.model.quantize import int8_model

    openvino.save_model(int8_model(onnx_path, calibration, float_convs), str(out),
                        compress_to_fp16=False)
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Landslide IoU of two boolean masks (1 when both are empty)."""
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


def main() -> None:
    import os
    import tempfile

    from geoseg.model.bundled import resolve_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=resolve_model, default=resolve_model(),
                        help="trained geoseg .keras model or bundled model's name [default: "
                             "the bundled demo model]")
    parser.add_argument("--dataset", type=Path, default=None,
                        help="reference-layout dataset: valid/ tiles scored, train/ calibrates")
    parser.add_argument("--tiles", type=int, default=32)
    parser.add_argument("--calibration", type=int, default=16,
                        help="tiles calibrating the int8 quantisation")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7, help="synthetic scene seed")
    parser.add_argument("--xla", action="store_true", help="also Keras with XLA (slow on CPU)")
    args = parser.parse_args()

    from geoseg.model.convert import converted_model
    from geoseg.model.flexunet import load_model
    from geoseg.model.inference import KerasPredictor
    from geoseg.model.runtimes import OnnxPredictor, open_runtime

    model, settings = load_model(args.model)
    size = settings.image_size
    truth: np.ndarray | None = None
    if args.dataset is not None:
        tiles, truth = dataset_tiles(args.dataset / "valid", size)
        tiles, truth = tiles[: args.tiles], truth[: args.tiles]
        calibration = dataset_tiles(args.dataset / "train", size)[0][: args.calibration]
        origin = f"{args.dataset}/valid"
    else:
        tiles = scene_tiles(args.tiles, size, args.seed)
        calibration = scene_tiles(args.calibration, size, args.seed + 1)
        origin = f"a synthetic scene (seed {args.seed})"
    flags = cpu_flags()
    wide = sorted(f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "fma"))
    print(f"CPU: {os.cpu_count()} cores, {' '.join(wide) or 'no AVX2/AVX-512'}; load "
          f"{os.getloadavg()[0]:.1f}")
    print(f"model: {args.model} ({model.count_params()} parameters); {len(tiles)} tiles of "
          f"{size} px from {origin}, batch {args.batch_size}", flush=True)

    batch = args.batch_size
    variants: dict[str, Callable[[], Callable[[np.ndarray], np.ndarray]]] = {
        "keras float32": lambda: KerasPredictor(model, batch, "cpu"),
        "keras bfloat16": lambda: KerasPredictor(model, batch, "cpu", precision="bfloat16"),
        "onnxruntime float32": lambda: open_runtime(
            "onnx", converted_model(args.model, "onnx"), batch),
        "onnxruntime int8": lambda: OnnxPredictor(int8_onnx(
            converted_model(args.model, "onnx"), calibration, Path(scratch) / "int8.onnx"),
            batch),
        "openvino float32": lambda: open_runtime(
            "openvino", converted_model(args.model, "openvino"), batch),
        "openvino bfloat16": lambda: open_runtime(
            "openvino", converted_model(args.model, "openvino"), batch, "bfloat16"),
        "openvino int8": lambda: open_runtime("openvino", nncf_int8(
            converted_model(args.model, "onnx"), calibration, Path(scratch) / "int8.xml", 0),
            batch),
        "openvino int8, conv 1 f32": lambda: open_runtime("openvino", nncf_int8(
            converted_model(args.model, "onnx"), calibration, Path(scratch) / "int8_f1.xml", 1),
            batch),
        "litert float32": lambda: open_runtime(
            "tflite", converted_model(args.model, "tflite"), batch),
    }
    if args.xla:
        variants["keras float32 + XLA"] = lambda: KerasPredictor(model, batch, "cpu",
                                                                 jit_compile=True)
    runners: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    outputs: dict[str, np.ndarray] = {}
    walls: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, make in variants.items():
            try:
                runners[name] = make()
            except Exception as exc:  # a runtime or converter that is not installed
                print(f"{name:26s} skipped: {exc}")
                continue
            outputs[name] = runners[name](tiles)  # traces / compiles; the answer to score
            walls[name], cpus[name] = [], []
        # In turns, so that every variant meets the same load; compared round by round.
        for _ in range(args.repeats):
            for name, run in runners.items():
                wall, cpu = time.perf_counter(), time.process_time()
                run(tiles)
                walls[name].append(time.perf_counter() - wall)
                cpus[name].append(time.process_time() - cpu)
    reference = outputs["keras float32"]
    base = np.array(walls["keras float32"])
    results: list[tuple[str, float, float]] = []
    for name, probs in outputs.items():
        mask = probs.argmax(-1) == 1
        gap = 1.0 - iou(reference.argmax(-1) == 1, mask)
        ratio = float(np.median(base / np.array(walls[name])))
        results.append((name, ratio, gap))
        scored = f"  IoU vs truth {iou(truth, mask):.4f}" if truth is not None else ""
        print(f"{name:26s} {len(tiles) / min(walls[name]):6.2f} tiles/s (best)  speed vs "
              f"keras float32 {ratio:4.2f}x (median of rounds)  "
              f"{1000 * float(np.median(cpus[name])) / len(tiles):5.0f} CPU ms/tile  "
              f"1-IoU {gap:.4f}  max |dp| {np.abs(probs - reference).max():.4f}{scored}",
              flush=True)
    float32, int8 = "openvino float32", "openvino int8, conv 1 f32"
    if float32 in walls and int8 in walls:  # geoseg's default float32 against its int8
        ratio = float(np.median(np.array(walls[float32]) / np.array(walls[int8])))
        print(f"{int8} (geoseg's int8 version) vs {float32} (the default backend): "
              f"{ratio:.2f}x (median of rounds)")
    name, ratio, gap = max((r for r in results if r[2] <= IOU_TOLERANCE), key=lambda r: r[1])
    print(f"load {os.getloadavg()[0]:.1f}; fastest within IoU {IOU_TOLERANCE} of float32: "
          f"{name}, {ratio:.2f}x keras float32 (1-IoU {gap:.4f})")


if __name__ == "__main__":
    main()
