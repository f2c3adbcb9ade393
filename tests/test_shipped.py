"""What an installed geoseg gives besides its code: the sample scene, the configs and the QGIS
plugin, the same files as a source checkout (``geoseg sample``, ``configs``, ``qgis-plugin``).
"""

from __future__ import annotations

import fnmatch
import zipfile
from pathlib import Path

import geopandas as gpd
import pytest
from click.testing import CliRunner

import geoseg.shipped
from geoseg.cli import cli
from geoseg.shipped import SHIPPED, build_plugin_zip, plugin_files, shipped_folder

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"


@pytest.fixture(scope="module")
def setuptools_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_the_wheel_lists_every_package_and_maps_the_shipped_folders(setuptools_config):
    packages = set(setuptools_config["packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts)
             for init in (ROOT / "geoseg").rglob("__init__.py")}
    assert found <= packages  # a package left out of the list would be left out of the wheel
    for kind, (installed, checkout) in SHIPPED.items():
        package = f"geoseg.{installed}"
        assert package in packages, kind
        assert setuptools_config["package-dir"][package] == checkout
        # every file that is not a module travels as package data
        patterns = setuptools_config["package-data"][package]
        for path in (ROOT / checkout).iterdir():
            if path.is_file() and path.suffix != ".py":
                assert any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns), path


def test_shipped_folders_are_the_installed_ones_first(tmp_path, monkeypatch):
    assert shipped_folder("configs") == ROOT / "configs"  # a checkout
    assert shipped_folder("qgis_plugin") == ROOT / "qgis_plugin" / "geoseg_qgis"
    installed = tmp_path / "site-packages" / "geoseg"
    (installed / "configs").mkdir(parents=True)
    monkeypatch.setattr(geoseg.shipped, "PACKAGE", installed)
    assert shipped_folder("configs") == installed / "configs"


def test_sample_writes_the_repositorys_sample_scene_and_truth(tmp_path):
    out = tmp_path / "sample_data"
    done = CliRunner().invoke(cli, ["sample", str(out)])
    assert done.exit_code == 0, done.output
    names = ["iburi_synthetic.tif", "iburi_synthetic_labels.tif",
             "iburi_synthetic_landslides.gpkg"]
    assert done.stdout.splitlines() == [str(out / name) for name in names]
    for name in names[:2]:
        assert (out / name).read_bytes() == (SAMPLE / name).read_bytes(), name
    # The GeoPackage's pages depend on GDAL's state in the writing process (inside this test
    # suite it lays out fewer pages than a fresh process): its layer must be the same.
    written, shipped = (gpd.read_file(folder / names[2], layer="landslides")
                        for folder in (out, SAMPLE))
    assert written.crs == shipped.crs and list(written.columns) == list(shipped.columns)
    assert written.geometry.to_wkb().tolist() == shipped.geometry.to_wkb().tolist()
    assert written.drop(columns="geometry").equals(shipped.drop(columns="geometry"))
    again = CliRunner().invoke(cli, ["sample", str(out)])
    assert again.exit_code == 1 and "exists already; pass --overwrite" in again.stderr


def test_configs_copies_the_shipped_configs(tmp_path):
    done = CliRunner().invoke(cli, ["configs", str(tmp_path / "configs")])
    assert done.exit_code == 0, done.output
    copy = tmp_path / "configs" / "hokkaido_cpu.config"
    shipped = sorted(path.name for path in (ROOT / "configs").glob("*.config"))
    assert done.stdout.splitlines() == [str(tmp_path / "configs" / name) for name in shipped]
    assert "hokkaido_cpu.config" in shipped
    assert copy.read_bytes() == (ROOT / "configs" / "hokkaido_cpu.config").read_bytes()
    copy.write_text("mine")
    refused = CliRunner().invoke(cli, ["configs", str(tmp_path / "configs")])
    assert refused.exit_code == 1 and copy.read_text() == "mine"
    assert CliRunner().invoke(cli, ["configs", str(tmp_path / "configs"),
                                    "--overwrite"]).exit_code == 0
    assert copy.read_bytes() == (ROOT / "configs" / "hokkaido_cpu.config").read_bytes()


def test_qgis_plugin_writes_the_zip_of_the_plugin(tmp_path):
    done = CliRunner().invoke(cli, ["qgis-plugin", str(tmp_path / "dist")])
    assert done.exit_code == 0, done.output
    archive = tmp_path / "dist" / "geoseg_qgis.zip"
    assert done.stdout.strip() == str(archive)
    plugin = ROOT / "qgis_plugin" / "geoseg_qgis"
    with zipfile.ZipFile(archive) as zipped:
        assert sorted(zipped.namelist()) == [f"geoseg_qgis/{path.as_posix()}"
                                             for path in plugin_files(plugin)]
        assert zipped.read("geoseg_qgis/runner.py") == (plugin / "runner.py").read_bytes()
    refused = CliRunner().invoke(cli, ["qgis-plugin", str(tmp_path / "dist")])
    assert refused.exit_code == 1 and "exists already" in refused.stderr


def test_the_zip_is_named_for_qgis_whatever_the_folder_it_is_made_from(tmp_path):
    """Installed, the plugin's folder is geoseg/qgis_plugin; QGIS needs geoseg_qgis/."""
    folder = tmp_path / "qgis_plugin"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    with zipfile.ZipFile(build_plugin_zip(tmp_path / "p.zip", folder)) as zipped:
        assert zipped.namelist() == ["geoseg_qgis/__init__.py"]
