#!/bin/sh
# test_install.sh BUILD - the installed package: `make install` into a
# temporary DESTDIR, then, against the installed copy only:
#   - every file is where it belongs (binary, libsinkllm.so* with its soname
#     links, libsinkllm.a, the public headers under include/sinkllm/,
#     sinkllm.pc, sinkllm.1);
#   - examples/simple.c built with `pkg-config --cflags --libs sinkllm` links
#     the shared library and prints what `sinkllm run --temp 0` prints;
#   - `man -l` renders the page, with a section per command;
#   - libsinkllm.so exports exactly the functions the installed sinkllm.h
#     and sinkllm_train.h declare (nm -D --defined-only against the
#     preprocessed headers);
#   - `make uninstall` removes every file it installed.
set -u
build=${1:-build}
cd "$(dirname "$0")/.." || exit 2
MODEL=${SINKLLM_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest
pre=/usr/local
root=$dest$pre
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

if ! ${MAKE:-make} -s BUILD="$build" install PREFIX=$pre DESTDIR="$dest" >"$tmp/install.log" 2>&1; then
    cat "$tmp/install.log"
    echo "FAIL: make install"
    exit 1
fi
version=$(sed -n 's/^#define SINKLLM_VERSION "\(.*\)"/\1/p' include/sinkllm.h)
major=${version%%.*}
for f in bin/sinkllm lib/libsinkllm.so.$version lib/libsinkllm.a include/sinkllm/sinkllm.h \
         include/sinkllm/status.h lib/pkgconfig/sinkllm.pc share/man/man1/sinkllm.1; do
    [ -f "$root/$f" ] && ok || bad "installed file $f missing"
done
[ "$(readlink "$root/lib/libsinkllm.so.$major")" = "libsinkllm.so.$version" ] && ok ||
    bad "libsinkllm.so.$major does not point to libsinkllm.so.$version"
[ "$(readlink "$root/lib/libsinkllm.so")" = "libsinkllm.so.$major" ] && ok ||
    bad "libsinkllm.so does not point to libsinkllm.so.$major"
readelf -d "$root/lib/libsinkllm.so.$version" | grep -q "SONAME.*\[libsinkllm.so.$major\]" && ok ||
    bad "soname is not libsinkllm.so.$major"

# exported names: exactly the functions the installed header declares
# (SINKLLM_0 is the version node of the map)
nm -D --defined-only "$root/lib/libsinkllm.so.$version" | awk '{sub(/@.*/, "", $NF); print $NF}' |
    grep -v '^SINKLLM_' | sort -u > "$tmp/syms"
for h in sinkllm.h sinkllm_train.h; do ${CC:-cc} -E -P -I"$root/include/sinkllm" "$root/include/sinkllm/$h"; done | tr '\n' ' ' |
    grep -o '\bsk_[a-z0-9_]*[[:space:]]*(' | sed 's/[[:space:]]*($//' | sort -u > "$tmp/public"
grep -v '^sk_' "$tmp/syms" > "$tmp/foreign"
[ -s "$tmp/foreign" ] && bad "exported names outside sk_*: $(head -5 "$tmp/foreign" | tr '\n' ' ')" || ok
comm -23 "$tmp/syms" "$tmp/public" > "$tmp/internal"
[ -s "$tmp/internal" ] && bad "exported names the header does not declare: $(head -5 "$tmp/internal" | tr '\n' ' ')" || ok
comm -13 "$tmp/syms" "$tmp/public" > "$tmp/missing"
[ -s "$tmp/missing" ] && bad "declared but not exported: $(head -5 "$tmp/missing" | tr '\n' ' ')" || ok
[ "$(wc -l < "$tmp/public")" -gt 50 ] && ok || bad "fewer than 50 public functions found in the header"
for s in sk_model_load sk_context_new sk_decode sk_logits sk_tokenize sk_sampler_new sk_chat_render \
    sk_trainer_new sk_trainer_step sk_trainer_export; do
    grep -qx "$s" "$tmp/syms" && ok || bad "$s not exported"
done

# pkg-config, with the prefix moved into DESTDIR
pc="pkg-config --define-variable=prefix=$root"
export PKG_CONFIG_PATH="$root/lib/pkgconfig"
[ "$($pc --modversion sinkllm)" = "$version" ] && ok || bad "pkg-config --modversion"
$pc --libs --static sinkllm | grep -q -- '-lm' && ok || bad "pkg-config --static --libs has no -lm"

# examples/simple.c (the public API's one-page `sinkllm run`), built against
# the installed copy with pkg-config, links the shared library and prints
# what `sinkllm run --temp 0` prints, prompt included
prompt="The capital of France is"
# a sanitizer build (make asan) needs its runtime in the program too
san=""
readelf -d "$root/lib/libsinkllm.so.$version" | grep -q 'NEEDED.*libasan' && san="$san -fsanitize=address"
readelf -d "$root/lib/libsinkllm.so.$version" | grep -q 'NEEDED.*libubsan' && san="$san -fsanitize=undefined"
if ${CC:-cc} -std=c11 -Wall -Wextra -Werror $san -o "$tmp/simple" examples/simple.c \
        $($pc --cflags --libs sinkllm) 2>"$tmp/cc.log"; then
    ok
    readelf -d "$tmp/simple" | grep -q "NEEDED.*\[libsinkllm.so.$major\]" && ok ||
        bad "the program does not link libsinkllm.so.$major"
    LD_LIBRARY_PATH="$root/lib" "$tmp/simple" "$MODEL" "$prompt" 24 0 >"$tmp/simple.out" \
        2>"$tmp/simple.err" && ok || { bad "examples/simple.c failed"; cat "$tmp/simple.err"; }
    "$root/bin/sinkllm" run -m "$MODEL" -p "$prompt" -n 24 --temp 0 >"$tmp/cli.out" 2>/dev/null
    if [ -s "$tmp/cli.out" ] && cmp -s "$tmp/simple.out" "$tmp/cli.out"; then ok; else
        bad "examples/simple.c differs from sinkllm run --temp 0:"
        echo "  simple: $(cat "$tmp/simple.out")"
        echo "  cli:    $(cat "$tmp/cli.out")"
    fi
else
    bad "cannot build examples/simple.c against the installed package"
    cat "$tmp/cc.log"
fi

# the man page renders, with the description and every command
MANWIDTH=80 MANPAGER=cat man -l "$root/share/man/man1/sinkllm.1" >"$tmp/man.txt" 2>"$tmp/man.err" &&
    [ ! -s "$tmp/man.err" ] && ok || { bad "man -l failed"; cat "$tmp/man.err"; }
for s in "NAME" "SINKLLM RUN" "SINKLLM SERVE" "SINKLLM PPL" "SINKLLM TRAIN" "--kv-type"; do
    grep -q -- "$s" "$tmp/man.txt" && ok || bad "man page lacks '$s'"
done

${MAKE:-make} -s BUILD="$build" uninstall PREFIX=$pre DESTDIR="$dest" >/dev/null 2>&1 && ok ||
    bad "make uninstall"
left=$(find "$dest" ! -type d | head -5)
[ -z "$left" ] && ok || bad "left after uninstall: $left"

echo "test_install.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
