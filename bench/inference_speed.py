"""Benchmark: FlexUNet throughput with plain Keras, XLA, bfloat16 and ONNX Runtime.

Runs one model on the same tiles (``--tiles`` 512-pixel tiles of a synthetic scene from
:func:`geoseg.synthetic.make_scene`) through :class:`geoseg.inference.KerasPredictor` in float32
(the reference), with XLA (``jit_compile=True``), in bfloat16 (``precision="bfloat16"``) with and
without XLA, and through ONNX Runtime when ``tf2onnx`` and ``onnxruntime`` are installed. For
each it prints tiles/s and megapixels/s (best of ``--repeats`` passes, wall clock), CPU time
per tile, and how far its landslide masks (argmax) are from float32's: ``1 - IoU`` and the
largest probability difference.

Use a trained model (``--model``; the bundled demo model by default when it exists): with an
untrained one most pixels are coin tosses and every variant flips many of them. The last line
names the fastest variant whose IoU stays within 0.005 of float32.

    python bench/inference_speed.py --model model.keras
    python bench/inference_speed.py --tiles 8 --repeats 1     # a quick run
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
    from geoseg.synthetic import make_scene

    side = tile * int(np.ceil(np.sqrt(count)))
    image = make_scene(side, side, seed=seed).image
    tiles = [image[:, r : r + tile, c : c + tile].transpose(1, 2, 0)
             for r in range(0, side, tile) for c in range(0, side, tile)]
    return np.stack(tiles[:count]).astype(np.float32)


def onnx_runner(model, batch_size: int) -> Callable[[np.ndarray], np.ndarray] | None:
    """An ONNX Runtime session for ``model`` as a batch function, or None if unavailable."""
    try:
        import onnxruntime
        import tensorflow as tf
        import tf2onnx
    except ImportError:
        return None
    function = tf.function(lambda x: model(x, training=False))
    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="image"),)
    proto, _ = tf2onnx.convert.from_function(function, input_signature=spec, opset=17)
    session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        return np.concatenate([session.run(None, {name: batch[i : i + batch_size]})[0]
                               for i in range(0, len(batch), batch_size)])

    return run


def main() -> None:
    from geoseg.commands.predict import default_model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_model_path(),
                        help="trained geoseg .keras model [default: the bundled demo model]")
    parser.add_argument("--tiles", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7, help="synthetic scene seed")
    args = parser.parse_args()

    import keras

    from geoseg.inference import KerasPredictor
    from geoseg.model import build_flexunet, load_model
    from geoseg.settings import ModelSettings

    if args.model.exists():
        model, settings = load_model(args.model)
        origin = str(args.model)
    else:
        keras.utils.set_random_seed(0)
        settings = ModelSettings(image_size=512, base_filters=8, num_layers=5)
        model = build_flexunet(settings)
        origin = "an UNTRAINED FlexUNet (no --model): IoU figures are pessimistic"
    tiles = scene_tiles(args.tiles, settings.image_size, args.seed)
    flags = cpu_flags()
    bf16 = sorted(flags & {"avx512_bf16", "amx_bf16"}) or ["none"]
    print(f"model: {origin} ({model.count_params()} parameters); {len(tiles)} tiles of "
          f"{settings.image_size} px, batch {args.batch_size}; CPU bfloat16 support: "
          f"{', '.join(bf16)}", flush=True)

    variants: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "keras float32": KerasPredictor(model, args.batch_size, "cpu"),
        "keras float32 + XLA": KerasPredictor(model, args.batch_size, "cpu", jit_compile=True),
        "keras bfloat16": KerasPredictor(model, args.batch_size, "cpu", precision="bfloat16"),
        "keras bfloat16 + XLA": KerasPredictor(model, args.batch_size, "cpu",
                                               precision="bfloat16", jit_compile=True),
    }
    runner = onnx_runner(model, args.batch_size)
    if runner is not None:
        variants["onnxruntime float32"] = runner
    else:
        print("onnxruntime float32: skipped (pip install tf2onnx onnxruntime)")

    reference: np.ndarray | None = None
    results: list[tuple[str, float, float]] = []
    megapixels = len(tiles) * settings.image_size**2 / 1e6
    for name, run in variants.items():
        run(tiles[: args.batch_size])  # trace / compile outside the timing
        walls, cpus = [], []
        for _ in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            probs = run(tiles)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        if reference is None:
            reference = probs
        truth = reference.argmax(-1) == 1
        mask = probs.argmax(-1) == 1
        union = np.count_nonzero(truth | mask)
        iou = np.count_nonzero(truth & mask) / union if union else 1.0
        best = min(walls)
        results.append((name, len(tiles) / best, 1.0 - iou))
        print(f"{name:22s} {len(tiles) / best:6.2f} tiles/s {megapixels / best:6.2f} MP/s "
              f"{1000 * min(cpus) / len(tiles):6.0f} CPU ms/tile  1-IoU {1.0 - iou:.4f}  "
              f"max |dp| {np.abs(probs - reference).max():.4f}  "
              f"(landslide pixels {truth.mean():.2%})", flush=True)
    name, rate, gap = max((r for r in results if r[2] <= IOU_TOLERANCE), key=lambda r: r[1])
    print(f"fastest within IoU {IOU_TOLERANCE} of float32: {name}, {rate:.2f} tiles/s, "
          f"{rate * settings.image_size**2 / 1e6:.2f} MP/s (1-IoU {gap:.4f})")


if __name__ == "__main__":
    main()
