#!/bin/sh
# fetch-corpus.sh - the pre-training corpus of issue 15, English text that
# Debian packages ship (docs/training.md, "The corpus"):
#
#   sh scripts/fetch-corpus.sh [OUT]        (make corpus; OUT: build/corpus)
#
# Downloads each package pinned below with `apt-get download` (no root
# needed), checks its SHA-256, keeps it in OUT/debs/, extracts it with
# `dpkg-deb -x` (of the two largest only the folders that are read:
# `dpkg-deb --fsys-tarfile | tar -x`) into a temporary folder under OUT, runs
# scripts/build_corpus.py (the system python3, standard library only) on
# them: OUT/train.txt (trained on), OUT/heldout.txt (whole documents set
# aside, never trained on), OUT/manifest.tsv (every document, its split and
# size) and OUT/build.log. Both texts are checked against their SHA-256
# below. Idempotent: when both texts are present with the right checksums
# nothing is done; a .deb already in OUT/debs with the right checksum is not
# downloaded again.
#
# When apt's lists lack a pinned version, the script runs `apt-get update`
# (as root, or through sudo) and tries again. Debian's archive keeps only
# the current version of each package of a release: a package updated by a
# point release or a security update (linux-doc-6.1, python3.11-doc,
# perl-doc) loses its pinned version; the script then stops with an error
# that lists the versions apt offers. Moving a pin means a new .deb
# checksum, and new text checksums (the script prints them), here and in
# docs/training.md. Any checksum mismatch is an error that names the file.
set -eu
cd "$(dirname "$0")/.."
OUT=${1:-build/corpus}

# package version architecture sha256-of-the-.deb
PKGS='
bible-kjv-text 4.38 all d61b6aad4c51ba9e2800b825325fa6a09e99a0d02a9bb6dc4724fcc4995a1b7a
bible-kjv 4.38 amd64 75a49c032a6efa9faa2beb4a9acb70974380122906329d0e100de36cc88ff02d
fortunes 1:1.99.1-7.3 all 41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5
jargon-text 4.4.7-4.1 all 17d05997e30eb3d5d6713929b8e2f81b63a5f50073858ad2a06701c71f54dcdb
python3.11-doc 3.11.2-6+deb12u8 all 50eb63e7f636c4281e9ce1b8f10386f1def42159eddce34fc1f41c46261df71b
linux-doc-6.1 6.1.176-1 all 0d843674607703b9ef8c1db5e715c38ed52ff23574feabfe0d961d552126859f
perl-doc 5.36.0-7+deb12u3 all e9e3564ff5ade27de0585835f2acad769bcc545c0a0045a9f55d5401f27f7591
debian-reference-en 2.100 all 9f31d3a17df505de09689ca255512ea58c1fc47c59bb1b0c7bf1c23362e9743f
debian-handbook 11.20220922 all 3d5dbeac1f1afc9c094eab9d0f701f6ecff99c4927d5a4794cf6c85678134faa
gnu-standards 2022.03.23-0.1 all 2087dda531c69d8505856a45e0334746f3f25211a237c95d375eed13a7d8c201
rust-doc 1.63.0+dfsg1-2 all 96ef96fe6df87d939ca713bd7df3d15c2b778ccb892eca025c4ee504146f697b
dict-foldoc 20230119-1 all 745cbedb55c2da609cc88ee0284e9d11a67a11ae3709daf7bad0e895ac3294c3
dict-gcide 0.48.5+nmu2 all 7b0af5cfde3cbdef5e9d6e78f92ec335ced7c2790f37a40f49bebc6f7347ac0f
dict-devil 1.0-13.1 all 6a535684def2a1f70cd42da16d12d43f0e9dc3e54e4a329178eebab3170e3154
'
TRAIN_SHA256=7543aebd015fa45ee13755d792b764c8092d49e319acab3d15364d75bb29e981
HELDOUT_SHA256=3cbd77f52865b648a7518f0eec16cb0b0ab432f3d0a9daafa7d76c4a73f90e11

# the folders that build_corpus.py reads of a package ("": extract all of it)
members() {
    case $1 in
    linux-doc-6.1) echo ./usr/share/doc/linux-doc-6.1/Documentation ;;
    rust-doc) for b in book reference nomicon rust-by-example edition-guide embedded-book rustc unstable-book; do
        echo ./usr/share/doc/rust-doc/html/$b; done ;;
    *) echo "" ;;
    esac
}

die() { echo "fetch-corpus.sh: $*" >&2; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
good() { [ -f "$1" ] && [ "$(sha "$1")" = "$2" ]; }

if good "$OUT/train.txt" "$TRAIN_SHA256" && good "$OUT/heldout.txt" "$HELDOUT_SHA256"; then
    echo "corpus: $OUT/train.txt and $OUT/heldout.txt are present, checksums match"
    exit 0
fi
for t in sha256sum dpkg-deb apt-get python3; do
    command -v $t >/dev/null 2>&1 || die "needs $t"
done
mkdir -p "$OUT/debs"
TMP=$(mktemp -d "$OUT/.tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM
chmod 755 "$TMP"
# apt-get download as root drops to the _apt user, who may not reach OUT
APTOPT=""
[ "$(id -u)" = 0 ] && APTOPT="-o APT::Sandbox::User=root"

fetch() { # name version arch: download into $TMP/dl, print the .deb's path
    spec="$1=$2"
    [ "$3" = all ] || spec="$1:$3=$2"
    rm -rf "$TMP/dl" && mkdir "$TMP/dl" && chmod 755 "$TMP/dl"
    # shellcheck disable=SC2086
    if ! (cd "$TMP/dl" && apt-get download -q $APTOPT "$spec" >&2); then
        if [ ! -e "$TMP/updated" ]; then # once (fetch runs in a subshell: a file, not a variable)
            : > "$TMP/updated"
            echo "fetch-corpus.sh: $spec not in apt's lists, running apt-get update" >&2
            if [ "$(id -u)" = 0 ]; then apt-get update -qq >&2 || true
            elif command -v sudo >/dev/null 2>&1; then sudo apt-get update -qq >&2 || true; fi
            fetch "$@"
            return
        fi
        echo "fetch-corpus.sh: apt offers these versions of $1:" >&2
        apt-cache madison "$1" >&2 || true
        die "cannot download $spec: the pinned version is not in Debian's archive (any more); see the comment at the top of this script"
    fi
    set -- "$TMP"/dl/*.deb
    if [ $# != 1 ] || [ ! -f "$1" ]; then die "apt-get download $spec: expected one .deb"; fi
    echo "$1"
}

if [ "$(dpkg --print-architecture)" != amd64 ]; then
    die "bible-kjv (the program that decompresses the Bible's text) is pinned for amd64; this is $(dpkg --print-architecture)"
fi

echo "$PKGS" | while read -r name ver arch pin; do
    [ -n "$name" ] || continue
    deb="$OUT/debs/${name}.deb"
    if ! good "$deb" "$pin"; then
        got=$(fetch "$name" "$ver" "$arch")
        have=$(sha "$got")
        [ "$have" = "$pin" ] || die "$name $ver: the .deb's SHA-256 is $have, pinned $pin"
        mv "$got" "$deb"
    fi
    mkdir -p "$TMP/pkgs/$name"
    m=$(members "$name")
    if [ -z "$m" ]; then
        dpkg-deb -x "$deb" "$TMP/pkgs/$name" || die "dpkg-deb -x $deb failed"
    else
        # shellcheck disable=SC2086
        dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$TMP/pkgs/$name" $m || die "extracting $deb failed"
    fi
done

echo "corpus: packages checked and extracted; building the texts (a minute or two)" >&2
python3 scripts/build_corpus.py --pkgs "$TMP/pkgs" --out "$TMP/out" --moby data/moby-dick.txt \
    2>"$TMP/out.log" || { cat "$TMP/out.log" >&2; die "build_corpus.py failed"; }
bad=0
for f in train heldout; do
    want=$TRAIN_SHA256
    [ $f = train ] || want=$HELDOUT_SHA256
    have=$(sha "$TMP/out/$f.txt")
    if [ "$have" != "$want" ]; then
        echo "fetch-corpus.sh: $f.txt has SHA-256 $have, expected $want" >&2
        bad=1
    fi
done
if [ $bad = 1 ]; then
    for f in train heldout; do mv "$TMP/out/$f.txt" "$OUT/$f.txt.mismatch"; done
    mv "$TMP/out.log" "$OUT/build.log.mismatch"
    die "the texts differ from the recorded ones (left as $OUT/*.txt.mismatch, log in $OUT/build.log.mismatch)"
fi
mv "$TMP/out.log" "$OUT/build.log"
mv "$TMP/out/manifest.tsv" "$OUT/manifest.tsv"
mv "$TMP/out/heldout.txt" "$OUT/heldout.txt"
mv "$TMP/out/train.txt" "$OUT/train.txt"
rm -f "$OUT/train.txt.mismatch" "$OUT/heldout.txt.mismatch" "$OUT/build.log.mismatch"
cat "$OUT/build.log" >&2
echo "corpus: $OUT/train.txt ($(wc -c < "$OUT/train.txt") bytes), $OUT/heldout.txt ($(wc -c < "$OUT/heldout.txt") bytes)"
