#!/bin/sh
# test_install.sh BUILD - the installed package: `make install` into a
# temporary DESTDIR, then, against the installed copy only:
#   - every file is where it belongs (binary, libsinkllm.so* with its soname
#     links, libsinkllm.a, the public headers, sinkllm.pc, sinkllm.1);
#   - programs built with `pkg-config --cflags --libs sinkllm` (a greedy loop
#     of its own, and examples/simple.c when present) link the shared library
#     and print what `sinkllm run --temp 0` prints;
#   - `man -l` renders the page, with a section per command;
#   - libsinkllm.so exports only sk_* names (nm -D --defined-only);
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
for f in bin/sinkllm lib/libsinkllm.so.$version lib/libsinkllm.a include/sinkllm.h \
         include/status.h lib/pkgconfig/sinkllm.pc share/man/man1/sinkllm.1; do
    [ -f "$root/$f" ] && ok || bad "installed file $f missing"
done
[ "$(readlink "$root/lib/libsinkllm.so.$major")" = "libsinkllm.so.$version" ] && ok ||
    bad "libsinkllm.so.$major does not point to libsinkllm.so.$version"
[ "$(readlink "$root/lib/libsinkllm.so")" = "libsinkllm.so.$major" ] && ok ||
    bad "libsinkllm.so does not point to libsinkllm.so.$major"
readelf -d "$root/lib/libsinkllm.so.$version" | grep -q "SONAME.*\[libsinkllm.so.$major\]" && ok ||
    bad "soname is not libsinkllm.so.$major"

# exported names: sk_* only (SINKLLM_0 is the version node of the map)
nm -D --defined-only "$root/lib/libsinkllm.so.$version" | awk '{sub(/@.*/, "", $NF); print $NF}' |
    grep -v '^SINKLLM_' > "$tmp/syms"
grep -v '^sk_' "$tmp/syms" > "$tmp/foreign"
[ -s "$tmp/foreign" ] && bad "exported names outside sk_*: $(head -5 "$tmp/foreign" | tr '\n' ' ')" || ok
for s in sk_model_load sk_context_new sk_decode sk_logits sk_tokenize sk_sampler_new sk_chat_render; do
    grep -qx "$s" "$tmp/syms" && ok || bad "$s not exported"
done

# pkg-config, with the prefix moved into DESTDIR
pc="pkg-config --define-variable=prefix=$root"
export PKG_CONFIG_PATH="$root/lib/pkgconfig"
[ "$($pc --modversion sinkllm)" = "$version" ] && ok || bad "pkg-config --modversion"
$pc --libs --static sinkllm | grep -q -- '-lm' && ok || bad "pkg-config --static --libs has no -lm"

# a small greedy generator over the public API (until examples/ has one)
cat > "$tmp/greedy.c" <<'CEOF'
/* greedy.c - print the first N greedy tokens after a prompt. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sinkllm.h>

/* the tokenizer calls the library exports (declared here until the public
 * header carries them; identical redeclarations are valid C) */
sk_status sk_tokenize(const sk_tokenizer *tok, const char *text, size_t len, int add_special,
                      int parse_special, int32_t *out, int64_t cap, int64_t *n_out, sk_error *err);
int sk_token_to_piece(const sk_tokenizer *tok, int32_t id, int render_special, char *buf,
                      size_t cap);
int sk_token_is_eog(const sk_tokenizer *tok, int32_t id);

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    sk_error err = {0};
    sk_model *m = NULL;
    sk_context *c = NULL;
    sk_context_params cp;
    sk_context_params_default(&cp);
    cp.n_threads = 1;
    if (sk_model_load(argv[1], &m, &err) || sk_context_new(m, &cp, &c, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    const sk_tokenizer *tok = sk_model_tokenizer(m);
    int32_t ids[512];
    int64_t n = 0;
    if (sk_tokenize(tok, argv[2], strlen(argv[2]), 1, 0, ids, 512, &n, &err) || n > 512 ||
        sk_decode(c, ids, n, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    int64_t nv = sk_model_hparams(m)->n_vocab;
    for (int i = 0; i < atoi(argv[3]); i++) {
        const float *lg = sk_logits(c);
        int32_t best = 0;
        for (int64_t v = 1; v < nv; v++)
            if (lg[v] > lg[best]) best = (int32_t)v;
        if (sk_token_is_eog(tok, best)) break;
        char piece[256];
        int k = sk_token_to_piece(tok, best, 0, piece, sizeof piece);
        fwrite(piece, 1, (size_t)k, stdout);
        if (sk_decode(c, &best, 1, &err)) {
            fprintf(stderr, "error: %s\n", err.msg);
            return 1;
        }
    }
    putchar('\n');
    sk_context_free(c);
    sk_model_free(m);
    return 0;
}
CEOF
prompt="The capital of France is"
# a sanitizer build (make asan) needs its runtime in the program too
san=""
readelf -d "$root/lib/libsinkllm.so.$version" | grep -q 'NEEDED.*libasan' && san="$san -fsanitize=address"
readelf -d "$root/lib/libsinkllm.so.$version" | grep -q 'NEEDED.*libubsan' && san="$san -fsanitize=undefined"
if ${CC:-cc} -std=c11 -Wall -Wextra -Werror $san -o "$tmp/greedy" "$tmp/greedy.c" $($pc --cflags --libs sinkllm) \
        2>"$tmp/cc.log"; then
    ok
    readelf -d "$tmp/greedy" | grep -q "NEEDED.*\[libsinkllm.so.$major\]" && ok ||
        bad "the program does not link libsinkllm.so.$major"
    LD_LIBRARY_PATH="$root/lib" "$tmp/greedy" "$MODEL" "$prompt" 24 >"$tmp/lib.out" 2>"$tmp/lib.err" &&
        ok || { bad "greedy program failed"; cat "$tmp/lib.err"; }
    LD_LIBRARY_PATH= "$root/bin/sinkllm" run -m "$MODEL" -p "$prompt" -n 24 --temp 0 -t 1 \
        --no-display-prompt >"$tmp/cli.out" 2>/dev/null
    if [ -s "$tmp/cli.out" ] && cmp -s "$tmp/lib.out" "$tmp/cli.out"; then ok; else
        bad "greedy tokens differ from sinkllm run --temp 0:"
        echo "  lib: $(cat "$tmp/lib.out")"
        echo "  cli: $(cat "$tmp/cli.out")"
    fi
else
    bad "cannot build against the installed package"
    cat "$tmp/cc.log"
fi

# examples/simple.c (the public API's one-page `sinkllm run`) built the same
# way prints what `sinkllm run --temp 0` prints, prompt included
if [ -f examples/simple.c ]; then
    if ${CC:-cc} -std=c11 -Wall -Wextra -Werror $san -o "$tmp/simple" examples/simple.c \
            $($pc --cflags --libs sinkllm) 2>"$tmp/cc.log"; then
        LD_LIBRARY_PATH="$root/lib" "$tmp/simple" "$MODEL" "$prompt" 24 0 >"$tmp/simple.out" \
            2>/dev/null
        "$root/bin/sinkllm" run -m "$MODEL" -p "$prompt" -n 24 --temp 0 >"$tmp/cli2.out" 2>/dev/null
        if [ -s "$tmp/cli2.out" ] && cmp -s "$tmp/simple.out" "$tmp/cli2.out"; then ok; else
            bad "examples/simple.c differs from sinkllm run --temp 0:"
            echo "  simple: $(cat "$tmp/simple.out")"
            echo "  cli:    $(cat "$tmp/cli2.out")"
        fi
    else
        bad "cannot build examples/simple.c against the installed package"
        cat "$tmp/cc.log"
    fi
fi

# the man page renders, with the description and every command
MANWIDTH=80 MANPAGER=cat man -l "$root/share/man/man1/sinkllm.1" >"$tmp/man.txt" 2>"$tmp/man.err" &&
    [ ! -s "$tmp/man.err" ] && ok || { bad "man -l failed"; cat "$tmp/man.err"; }
for s in "NAME" "SINKLLM RUN" "SINKLLM SERVE" "SINKLLM PPL" "--kv-type"; do
    grep -q -- "$s" "$tmp/man.txt" && ok || bad "man page lacks '$s'"
done

${MAKE:-make} -s BUILD="$build" uninstall PREFIX=$pre DESTDIR="$dest" >/dev/null 2>&1 && ok ||
    bad "make uninstall"
left=$(find "$dest" ! -type d | head -5)
[ -z "$left" ] && ok || bad "left after uninstall: $left"

echo "test_install.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
