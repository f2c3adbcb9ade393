"""QGIS style sidecars and class colours."""

from __future__ import annotations

import xml.dom.minidom

from geoseg.raster.styles import class_colours, polygon_style, raster_style, style_path, write_style


def test_landslide_is_red_and_background_transparent():
    colours = class_colours(["background", "landslide"])
    assert colours[0][3] == 0
    assert colours[1] == (227, 26, 28, 255)
    three = class_colours(["background", "landslide", "flood"])
    assert len(set(three.values())) == 3


def test_styles_are_well_formed_qgis_xml(tmp_path):
    doc = xml.dom.minidom.parseString(raster_style(["background", "landslide"]))
    entries = doc.getElementsByTagName("paletteEntry")
    assert [e.getAttribute("label") for e in entries] == ["background", "landslide"]
    assert entries[1].getAttribute("color") == "#e31a1c"
    fill = xml.dom.minidom.parseString(polygon_style())
    assert fill.getElementsByTagName("renderer-v2")[0].getAttribute("type") == "singleSymbol"
    written = write_style(tmp_path / "pred.tif", raster_style(["a", "b"]))
    assert written == style_path(tmp_path / "pred.tif") == tmp_path / "pred.qml"
