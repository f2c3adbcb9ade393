#!/usr/bin/env bash
# CI, QGIS part: install QGIS from Debian's packages, then test the geoseg Processing provider
# in a headless QGIS. The tests run under QGIS's Python (/usr/bin/python3), install the plugin
# from its zip into a clean profile, and run the venv's geoseg through it.
# Needs: Debian (12: QGIS 3.22 LTR), root or sudo, .venv with geoseg (made by .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

[ -x .venv/bin/geoseg ] || { echo "no .venv/bin/geoseg: run .ci/run (or pip install -e .)"; exit 1; }
command -v apt-get >/dev/null || { echo "the QGIS step needs Debian's apt-get"; exit 1; }
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends \
  qgis python3-qgis qgis-providers python3-pytest >/dev/null
echo "QGIS $(dpkg-query -W -f '${Version}' qgis) ready after $((SECONDS - started)) s"

QT_QPA_PLATFORM=offscreen GEOSEG_EXECUTABLE="$PWD/.venv/bin/geoseg" \
  /usr/bin/python3 -m pytest -q -p no:cacheprovider qgis_plugin/tests
echo "QGIS step took $((SECONDS - started)) s"
