#!/usr/bin/env bash
# Build .gpu_carry/ (git-ignored): site.tar.xz, the Python 3.12 x86_64 packages the GPU machine
# lacks (it has numpy, pandas, pyarrow, scikit-learn, scipy, JAX and PyTorch, but no Keras,
# Optuna or Ray, and no registry access) unpacked from their wheels into one folder, Ray without
# jars/rllib/serve/llm/the dashboard's web build (its wheel alone is ~79 MB), xz-compressed; and
# run_on_gpu.sh, the one command to run there:
#
#   bash bench/gpu_carry.sh            # here (downloads from the package registry)
#   run(command="bash .gpu_carry/run_on_gpu.sh", carry=[".gpu_carry"], timeout_s=570)
#
# Versions are those of the venv this runs in, so the GPU run uses what CI tests. Fails if the
# folder is 64 MiB or more.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.gpu_carry
LIMIT=$((64 * 1024 * 1024))
PY=${PYTHON:-python}

# name==version of each package as installed here (the GPU run gets the same versions)
pinned() {
    "$PY" - "$@" <<'PYEOF'
import importlib.metadata as m, sys
print(" ".join(f"{name}=={m.version(name)}" for name in sys.argv[1:]))
PYEOF
}

PACKAGES=(
    keras optree namex absl-py h5py rich markdown-it-py mdurl pygments
    optuna sqlalchemy alembic colorlog tqdm mako markupsafe
    pydantic pydantic-core annotated-types typing-inspection typing-extensions pyyaml packaging
    click filelock jsonschema jsonschema-specifications referencing rpds-py attrs msgpack protobuf
    requests urllib3 idna charset-normalizer certifi tensorboardX fsspec
    optuna-dashboard plotly narwhals pillow
)
# greenlet is sqlalchemy's optional C extension: take it when a wheel exists
OPTIONAL=(greenlet)

rm -rf "$DEST"
mkdir -p "$DEST/wheels" "$DEST/tmp"
download() {
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --abi cp312 --abi abi3 --abi none \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_28_x86_64 --platform any -d "$1" "${@:2}"
}
# shellcheck disable=SC2046
download "$DEST/wheels" $(pinned "${PACKAGES[@]}")
for name in "${OPTIONAL[@]}"; do
    download "$DEST/wheels" "$name" || echo "no wheel of $name (optional): skipped"
done

# Everything unpacked into one site folder (a wheel's files are its installed layout; console
# scripts are not needed), Ray without what a local Tune run never loads, re-packed as one xz tar:
# xz packs plotly's and the dashboard's JavaScript far tighter than the wheels' zip.
download "$DEST/wheels" $(pinned ray)
SITE="$DEST/tmp/site"
mkdir -p "$SITE"
for wheel in "$DEST"/wheels/*.whl; do
    "$PY" -m zipfile -e "$wheel" "$SITE"
done
rm -rf "$SITE/ray/jars" "$SITE/ray/rllib" "$SITE/ray/serve" "$SITE/ray/llm" \
    "$SITE/ray/dashboard/client/build" "$SITE"/*.data
find "$SITE" -name '__pycache__' -prune -exec rm -rf {} +
chmod -R u+rwX,go+rX "$SITE"
find "$SITE/ray/core" -type f -exec chmod +x {} +
XZ_OPT="-9 -T0" tar -C "$SITE" -cJf "$DEST/site.tar.xz" .
rm -rf "$DEST/tmp" "$DEST/wheels"

cat > "$DEST/run_on_gpu.sh" <<'RUNEOF'
#!/usr/bin/env bash
# On the GPU machine, from the repository root: unpack the carried packages (they go before the
# machine's own numpy/pandas/pyarrow/JAX on the path, which they do not include) and run
# bench/gpu.py under JAX; its figures land in $OUT.
set -euo pipefail
SITE=/tmp/ofsite
mkdir -p "$SITE"
tar -xJf .gpu_carry/site.tar.xz -C "$SITE"
export PYTHONPATH=$PWD:$SITE KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false
export OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" || true
python3 -c 'import jax, keras, optuna, ray.tune; print(jax.devices(), keras.__version__, optuna.__version__, ray.__version__)' | tee "$OUT/versions.txt"
python3 bench/gpu.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu.log"
RUNEOF
chmod +x "$DEST/run_on_gpu.sh"

TOTAL=$(du -sb "$DEST" | cut -f1)
ls -l "$DEST"
printf 'total %s bytes (%.1f MiB), limit 64 MiB\n' "$TOTAL" "$(echo "$TOTAL / 1048576" | bc -l)"
if [ "$TOTAL" -ge "$LIMIT" ]; then
    echo "FAIL: $DEST is over the 64 MiB one device call can carry" >&2
    exit 1
fi
