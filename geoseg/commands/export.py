"""``geoseg export``: a model for serving elsewhere (SavedModel, ONNX, TFLite)."""

from __future__ import annotations

import click

from geoseg.commands.options import model_input, out_opt, overwrite_opt


@click.command(short_help="Export a model as SavedModel, ONNX or TFLite.")
@click.argument("model_path", type=model_input)
@click.option("-f", "--format", "export_format",
              type=click.Choice(["savedmodel", "onnx", "tflite"]), required=True,
              help="Target format (onnx needs: pip install 'geoseg[onnx]').")
@out_opt("out_path", "Output: a folder for savedmodel, a .onnx/.tflite file otherwise.",
         holds="either", required=True)
@overwrite_opt
def export(model_path: str, export_format: str, out_path: str, overwrite: bool) -> None:
    """Export MODEL_PATH (a geoseg .keras model, or a bundled model's name) for serving elsewhere.

    Inputs stay raw pixel values (normalisation is inside the graph); the model's settings
    (tile size, bands, classes) are written next to it as <out>.geoseg.json.

    \b
    Example:
      geoseg export model.keras --format onnx --out model.onnx
    """
    from geoseg.model.export import export_model, settings_sidecar

    path = export_model(model_path, out_path, export_format, overwrite)  # type: ignore[arg-type]
    click.echo(f"{path}: {export_format} model; settings in {settings_sidecar(path)}")
