"""QGIS-ready styling: class colours, and ``.qml`` style sidecars QGIS loads automatically.

QGIS applies ``<layer file stem>.qml`` found next to a raster or vector file when the layer is
added, so masks open with landslides in red and background transparent, and polygons open as
semi-transparent red fills (a GeoPackage keeps its style inside instead:
:mod:`geoseg.vectors.vector_formats`). The same class colours go into the mask GeoTIFF's colour
table, so GDAL-based tools see them too.

A sidecar is an output like any other (:func:`check_style_path`): refused when it exists unless
overwriting, and never the style of another file of the run, since QGIS would apply it to that
file too: the scene's own ``scene.qml``, or the mask's when the polygons share its name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

from geoseg.errors import OutputError, OutputIsInputError
from geoseg.raster.outputs import atomic_output, check_output_path, is_same_file

__all__ = ["class_colours", "raster_style", "ramp_style", "polygon_style", "write_style",
           "style_path", "check_style_path"]

LANDSLIDE_RED = (227, 26, 28)
_OTHER_COLOURS = [(31, 120, 180), (51, 160, 44), (255, 127, 0), (106, 61, 154), (177, 89, 40),
                  (166, 206, 227), (178, 223, 138), (251, 154, 153), (253, 191, 111)]


def class_colours(class_names: Sequence[str]) -> dict[int, tuple[int, int, int, int]]:
    """RGBA colour per class id: background transparent, landslide red, others distinct.

    >>> class_colours(["background", "landslide"])[1]
    (227, 26, 28, 255)
    """
    colours: dict[int, tuple[int, int, int, int]] = {}
    others = iter(_OTHER_COLOURS * (len(class_names) // len(_OTHER_COLOURS) + 1))
    for class_id, name in enumerate(class_names):
        lowered = name.lower()
        if lowered == "background" or (class_id == 0 and len(class_names) > 1):
            colours[class_id] = (0, 0, 0, 0)
        elif "landslide" in lowered or len(class_names) <= 2:
            colours[class_id] = (*LANDSLIDE_RED, 255)
        else:
            colours[class_id] = (*next(others), 255)
    return colours


def raster_style(class_names: Sequence[str]) -> str:
    """A QGIS paletted-renderer style for a class mask (nodata 255 left transparent)."""
    entries = "\n".join(
        f'        <paletteEntry value="{class_id}" color="#{r:02x}{g:02x}{b:02x}" '
        f'alpha="{a}" label={quoteattr(name)}/>'
        for (class_id, (r, g, b, a)), name in zip(class_colours(class_names).items(),
                                                  class_names, strict=True)
    )
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.28" styleCategories="AllStyleCategories">
  <pipe>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
  </pipe>
</qgis>
"""


def ramp_style(stops: Sequence[tuple[float, tuple[int, int, int, int]]]) -> str:
    """A QGIS single-band pseudocolour style of band 1: colours interpolated between
    ``(value, RGBA)`` stops (values as QGIS reads them, GDAL scale applied), clamped beyond
    the first and last; nodata left transparent."""
    low, high = stops[0][0], stops[-1][0]
    items = "\n".join(
        f'          <item value="{value:g}" color="#{r:02x}{g:02x}{b:02x}" alpha="{a}" '
        f'label="{value:g}"/>'
        for value, (r, g, b, a) in stops
    )
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.28" styleCategories="AllStyleCategories">
  <pipe>
    <rasterrenderer type="singlebandpseudocolor" band="1" opacity="1" alphaBand="-1"
                    classificationMin="{low:g}" classificationMax="{high:g}" nodataColor="">
      <rastershader>
        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0"
                         minimumValue="{low:g}" maximumValue="{high:g}"
                         labelPrecision="2">
{items}
        </colorrampshader>
      </rastershader>
    </rasterrenderer>
  </pipe>
</qgis>
"""


def polygon_style(fill_alpha: int = 110) -> str:
    """A QGIS single-symbol style: semi-transparent red fill, solid red outline."""
    r, g, b = LANDSLIDE_RED
    options = {"color": f"{r},{g},{b},{fill_alpha}", "outline_color": f"{r},{g},{b},255",
               "outline_width": "0.4", "outline_width_unit": "MM", "style": "solid",
               "outline_style": "solid"}
    option_lines = "\n".join(
        f'            <Option type="QString" name="{key}" value="{value}"/>'
        for key, value in options.items()
    )
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.28" styleCategories="Symbology">
  <renderer-v2 type="singleSymbol" symbollevels="0" enableorderby="0" forceraster="0">
    <symbols>
      <symbol type="fill" name="0" alpha="1" clip_to_extent="1" force_rhr="0">
        <layer class="SimpleFill" enabled="1" pass="0" locked="0">
          <Option type="Map">
{option_lines}
          </Option>
        </layer>
      </symbol>
    </symbols>
  </renderer-v2>
</qgis>
"""


def style_path(layer_path: str | os.PathLike[str]) -> Path:
    """The sidecar QGIS looks for: the layer file with a ``.qml`` extension."""
    return Path(layer_path).with_suffix(".qml")


def check_style_path(
    layer_path: str | os.PathLike[str],
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
    layers: Iterable[str | os.PathLike[str]] = (),
    advice: str = "give the output another name",
) -> Path:
    """Check, before any work, the ``.qml`` sidecar an output ``layer_path`` will get.

    Parameters
    ----------
    layer_path : path
        The output the style is for.
    overwrite : bool
        Whether an existing style may be replaced.
    inputs : paths
        The run's input files: the style is never one of them
        (:func:`geoseg.raster.outputs.check_output_path`).
    layers : paths
        The run's other layers, inputs and outputs: the style must not be the sidecar of any
        of them (QGIS would apply it to that file too).
    advice : str
        What to do, ending the message when the style is another layer's.

    Returns
    -------
    Path
        The style's path.

    Raises
    ------
    OutputIsInputError
        The style is one of ``inputs``, or the style of one of them.
    OutputError
        The style is another output's too, or its folder cannot be written.
    OutputExistsError
        The style exists and ``overwrite`` is False.
    """
    target = style_path(layer_path)
    input_list = list(inputs)
    for other in layers:
        if is_same_file(other, layer_path) or not is_same_file(style_path(other), target):
            continue
        if any(is_same_file(other, source) for source in input_list):
            raise OutputIsInputError(f"{target}: is the QGIS style of {other}, an input of this "
                                     f"run; {advice}")
        raise OutputError(f"{target}: would be the QGIS style of both {layer_path} and {other} "
                          f"(QGIS finds a layer's style by its file name); {advice}")
    return check_output_path(target, overwrite, input_list)


def write_style(layer_path: str | os.PathLike[str], style: str, overwrite: bool = False) -> Path:
    """Write ``style`` as the ``.qml`` sidecar of ``layer_path`` (atomically)."""
    target = style_path(layer_path)
    with atomic_output(target, overwrite) as tmp:
        tmp.write_text(style, encoding="utf-8")
    return target
