# Sourced by .ci/{compressai,encodec,dac}/setup.sh: build a peer codec's own venv (once per
# package set) and write the reference outputs ncodec's compatibility tests compare against.
#
# HERE is the sourcing script's folder: its stand-ins/ holds the stand-in packages that replace
# what the peer imports but its model code never uses. The sourcing script then sets
#   PEER      the pinned peer, installed with --no-deps
#   PACKAGES  an array: what the peer's model code really imports, and the references' own needs
# and defines `check_venv PYTHON`, the assertions on a freshly built venv, then calls
#   peer_setup NAME LABEL VENV [REFS]
# NAME as in scripts/NAME_reference.py, LABEL for messages, VENV the venv's folder, REFS the
# references' folder (default: VENV/refs).
#
# The venv is reused when its stamp ($VENV/.ncodec-NAME-stamp) holds this exact package set
# and stand-ins; otherwise it is built again from scratch. The references are written on every
# run, and the last line printed is their folder (everything else goes to stderr).

HERE="$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY="${PYTHON:-python3}"
# Every peer's venv gets this torch (a CPU build from local disk on the project's machines). It is
# installed once, into SHARED_TORCH, which each venv reaches through a .pth file: three private
# copies would cost ~1.7 GB of disk and three installs per clean run.
TORCH="torch==2.13.0"
SHARED_TORCH="${NCODEC_PEER_TORCH:-$ROOT/.ci/.torch}"

# Install $TORCH (and what it depends on) into $SHARED_TORCH, unless its stamp says it is there.
shared_torch() {
  local stamp="$SHARED_TORCH/.ncodec-torch-stamp"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$TORCH" ]; then
    echo "+ installing $TORCH into $SHARED_TORCH" >&2
    rm -rf "$SHARED_TORCH"
    "$PY" -m pip install -q --disable-pip-version-check --target "$SHARED_TORCH" "$TORCH" >&2
    echo "$TORCH" > "$stamp"
  fi
}

peer_setup() {
  local name="$1" label="$2" stamp want site
  VENV="$3"
  REFS="${4:-$VENV/refs}"
  stamp="$VENV/.ncodec-$name-stamp"
  shared_torch
  want="$TORCH@$SHARED_TORCH $PEER ${PACKAGES[*]} $(find "$HERE/stand-ins" -name '*.py' | LC_ALL=C sort | xargs cat | cksum)"

  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "+ building the $label venv in $VENV" >&2
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    # The shared torch goes on the venv's path after its own site-packages, so pip counts it as
    # installed; torch stays pinned while the rest resolves, and the peer itself goes in with
    # --no-deps (the heavy dependencies it declares stay out, see the sourcing script).
    echo "$SHARED_TORCH" > "$site/ncodec-shared-torch.pth"
    "$VENV/bin/python" -m pip install -q "$TORCH" "${PACKAGES[@]}"
    "$VENV/bin/python" -m pip install -q --no-deps "$PEER"
    rm -rf "$VENV/stand-ins"
    cp -r "$HERE/stand-ins" "$VENV/stand-ins"
    echo "$VENV/stand-ins" > "$site/ncodec-$name-stand-ins.pth"
    check_venv "$VENV/bin/python" >&2
    "$VENV/bin/python" - "${TORCH#torch==}" "${PEER%%==*}" "$SHARED_TORCH" >&2 <<'PYEOF'
import importlib.metadata as md
import os
import sys

import numpy, torch
assert torch.__version__.startswith(sys.argv[1]), torch.__version__
assert os.path.realpath(torch.__file__).startswith(os.path.realpath(sys.argv[3]) + os.sep), torch.__file__
print(sys.argv[2], md.version(sys.argv[2]), "torch", torch.__version__, "numpy", numpy.__version__)
PYEOF
    echo "$want" > "$stamp"
  fi

  "$VENV/bin/python" "$ROOT/scripts/${name}_reference.py" --out "$REFS" >&2
  echo "$REFS"
}
