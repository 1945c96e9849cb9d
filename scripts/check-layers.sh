#!/bin/sh
# check-layers.sh BUILD - the library's layering, checked on the tree and on
# the objects:
#   1. a layer includes only itself and the layers below it
#      (kernels < text < runtime < train; include/ is the public contract, seen by all);
#   2. no include circles: no two files include each other;
#   3. no call circles: no two object files each use a symbol the other defines;
#   4. tools/ and examples/ include only include/ (the public header).
# Prints each violation; exit 1 if any.
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.." || exit 2
bad=0
rank() { case $1 in kernels) echo 0;; text) echo 1;; runtime) echo 2;; train) echo 3;; *) echo 9;; esac; }

for f in src/*/*.c src/*/*.h; do
    own=$(basename "$(dirname "$f")")
    for inc in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f"); do
        case $inc in
        */*) dep=${inc%%/*};;
        *) [ -f "src/$own/$inc" ] && dep=$own || dep=include;;
        esac
        [ "$dep" = include ] && continue
        if [ "$(rank "$dep")" -gt "$(rank "$own")" ]; then
            echo "layering: $f ($own) includes $inc ($dep, a higher layer)"; bad=1
        fi
    done
done

# include pairs "a b" (a includes b), both as paths under src/
pairs=$(for f in src/*/*.c src/*/*.h; do
    d=$(dirname "$f")
    for inc in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f"); do
        case $inc in */*) t=src/$inc;; *) t=$d/$inc;; esac
        [ -f "$t" ] && echo "$f $t"
    done
done)
echo "$pairs" | while read -r a b; do
    [ -n "$a" ] || continue
    if echo "$pairs" | grep -qx "$b $a"; then echo "include circle: $a <-> $b"; fi
done | sort -u > /tmp/sk_layers.$$
[ -s /tmp/sk_layers.$$ ] && { cat /tmp/sk_layers.$$; bad=1; }
rm -f /tmp/sk_layers.$$

# call circles between object files
objs=$(find "$BUILD/obj" -name '*.o' 2>/dev/null | sort)
if [ -z "$objs" ]; then echo "check-layers: no objects under $BUILD/obj (build first)"; exit 2; fi
tmp=$(mktemp -d)
for o in $objs; do
    n=$(echo "$o" | sed "s|$BUILD/obj/||")
    nm -g --defined-only "$o" | awk '{print $3}' | sed "s|\$| $n|" >> "$tmp/def"
    nm -g --undefined-only "$o" | awk '{print $2}' | sed "s|^|$n |" >> "$tmp/use"
done
# edges: user -> definer
sort -k1,1 "$tmp/def" > "$tmp/def.s"
awk '{print $2, $1}' "$tmp/use" | sort -k1,1 | join - "$tmp/def.s" | awk '$2 != $3 {print $2, $3}' | sort -u > "$tmp/edges"
while read -r a b; do
    if grep -qx "$b $a" "$tmp/edges" && [ "$a" \< "$b" ]; then echo "call circle: $a <-> $b"; bad=1; fi
done < "$tmp/edges"
# layer order on calls too
while read -r a b; do
    la=${a%%/*}; lb=${b%%/*}
    if [ "$(rank "$lb")" -gt "$(rank "$la")" ]; then echo "layering: $a calls into $b"; bad=1; fi
done < "$tmp/edges"
rm -rf "$tmp"

for f in tools/*.c tools/*.h examples/*.c; do
    [ -f "$f" ] || continue
    for inc in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f"); do
        [ -f "$(dirname "$f")/$inc" ] && continue
        [ -f "include/$inc" ] && continue
        echo "public boundary: $f includes $inc (not in include/)"; bad=1
    done
done
[ $bad = 0 ] && echo "layers: ok"
exit $bad
