#!/usr/bin/env bash
# make demo: install the built plugin zip into an isolated QGIS profile and drive it with qgis_process
# on the bundled models and the real sample data. Outputs go to demo_output/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MSGFM_VENV:-$ROOT/.venv}"
OUT="$ROOT/demo_output"
VERSION="$(sed -n 's/^version=//p' "$ROOT/metadata.txt")"
ZIP="$ROOT/dist/msgfm_qgis-$VERSION.zip"

rm -rf "$OUT/qgis"
mkdir -p "$OUT/qgis/plugins" "$OUT/qgis/profile"
(cd "$OUT/qgis/plugins" && python3 -m zipfile -e "$ZIP" .)
export QGIS_CUSTOM_CONFIG_PATH="$OUT/qgis/profile" QGIS_PLUGINPATH="$OUT/qgis/plugins"
export QT_QPA_PLATFORM=offscreen
qgis_process() { "$VENV/bin/qgis_process" "$@" 2> >(grep -v -e XDG_RUNTIME_DIR -e "setapi() is deprecated" >&2); }

qgis_process plugins enable msgfm_qgis >/dev/null
echo "== msGFM algorithms available to qgis_process (plugin installed from $(basename "$ZIP")) =="
qgis_process list | sed -n '/^msGFM/,/^$/p' | tee "$OUT/algorithms.txt"

shopt -s nullglob
models=("$ROOT"/resources/models/*.onnx)
if [ "${#models[@]}" -eq 0 ]; then
    echo "No bundled models yet (resources/models/*.onnx): the analysis algorithms arrive with them."
fi
for model in "${models[@]}"; do
    echo "== msgfm:modelinfo $(basename "$model") =="
    qgis_process run msgfm:modelinfo -- "MODEL=$model" "OUTPUT=$OUT/$(basename "$model" .onnx).json"
done
echo "Sample data: $("$VENV/bin/msgfm" data path 2>/dev/null || echo 'run msgfm data fetch')"
echo "Demo outputs in $OUT"
