#!/usr/bin/env bash
# Installs kd into a temporary prefix (make install PREFIX=...) and checks it
# as a user of the library would: the layout, the public headers alone (each
# compiles by itself, none includes an uninstalled one), the man page, and
# examples/libkd/fashion.c built outside the tree with pkg-config, run
# against the shared library and linked statically.
#   scripts/test-install.sh [BUILD]        (default build; KD_BUILD too)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${KD_BUILD:-build}}
tmp=$(mktemp -d /tmp/kd-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail() { echo "install test: $*" >&2; exit 1; }

# A make started from a test inherits the outer make's jobserver variables.
if ! env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s -C "$root" BUILD="$build" install PREFIX="$prefix" \
    >"$tmp/make.log" 2>&1; then
  cat "$tmp/make.log" >&2
  fail "make install PREFIX=$prefix failed"
fi

for f in bin/kd lib/libkd.a lib/libkd.so lib/pkgconfig/kd.pc include/kd/README share/man/man1/kd.1; do
  [ -e "$prefix/$f" ] || fail "missing $f"
done
soname=$(readelf -d "$prefix/lib/libkd.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ -n "$soname" ] && [ -e "$prefix/lib/$soname" ] || fail "libkd.so has no soname link (soname '$soname')"
echo "ok layout: bin/kd lib/libkd.a lib/libkd.so ($soname) kd.pc include/kd/ kd.1"

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
cflags=$(pkg-config --cflags kd) || fail "pkg-config --cflags kd failed"
libs=$(pkg-config --libs kd)
static_libs=$(pkg-config --static --libs kd)

# Public headers only, each self-contained and including nothing uninstalled.
cd "$prefix/include/kd"
find . -name '*_impl.h' | grep -q . && fail "internal headers installed: $(find . -name '*_impl.h')"
n=0
for h in */kd_*.h; do
  for inc in $(sed -n 's/^#include "\(.*\)".*/\1/p' "$h"); do
    [ -f "$inc" ] || fail "$h includes \"$inc\", which is not installed"
  done
  printf '#include <kd/%s>\nint main(void) { return 0; }\n' "$h" >"$tmp/h.c"
  # shellcheck disable=SC2086
  cc -std=c11 -Wall -Wextra -Wpedantic -Werror -fsyntax-only $cflags "$tmp/h.c" 2>"$tmp/h.log" \
    || { cat "$tmp/h.log" >&2; fail "<kd/$h> does not compile on its own"; }
  n=$((n + 1))
done
echo "ok headers: $n public headers, each compiles alone with -std=c11 -Wpedantic -Werror"

# The man page renders without warnings and has a section for every command.
groff -man -Tutf8 -ww -z "$prefix/share/man/man1/kd.1" 2>"$tmp/man.log" && [ ! -s "$tmp/man.log" ] \
  || { cat "$tmp/man.log" >&2; fail "kd.1 does not render cleanly"; }
for c in $("$prefix/bin/kd" --help | awk '/^commands:/ {on = 1; next} on && /^$/ {exit} on && /^  [a-z]/ {print $1}'); do
  grep -q "^\.SS kd $c\$" "$prefix/share/man/man1/kd.1" || fail "kd.1 has no section for 'kd $c'"
done
echo "ok man: kd.1 renders cleanly and covers every command of kd --help"

mkdir "$tmp/src"
cp "$root/examples/libkd/fashion.c" "$tmp/src/"
cd "$tmp/src"
cmd="cc -std=c11 -Wall -Wextra -Wpedantic -Werror fashion.c \$(pkg-config --cflags --libs kd) -o fashion"
echo "build: PKG_CONFIG_PATH=\$PREFIX/lib/pkgconfig $cmd"
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Wpedantic -Werror fashion.c $cflags $libs -o fashion || fail "the shared build failed"
LD_LIBRARY_PATH=$prefix/lib ldd ./fashion | grep -q "libkd.so.* => $prefix/lib/" || fail "fashion does not load $prefix/lib's libkd.so"
echo "run: LD_LIBRARY_PATH=\$PREFIX/lib ./fashion"
KD_PROGRESS=0 LD_LIBRARY_PATH=$prefix/lib ./fashion | tee "$tmp/shared.out"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "fashion (shared) failed"
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Wpedantic -Werror fashion.c $cflags -Wl,-Bstatic -lkd -Wl,-Bdynamic \
  $(echo "$static_libs" | sed 's/-lkd//') -o fashion-static || fail "the static build failed"
ldd ./fashion-static | grep -q libkd && fail "fashion-static still loads libkd.so"
KD_PROGRESS=0 ./fashion-static >"$tmp/static.out" || fail "fashion (static) failed"
cmp -s "$tmp/shared.out" "$tmp/static.out" || fail "the static build printed something else: $(cat "$tmp/static.out")"
echo "ok static: pkg-config --static --libs kd, libkd.a linked in, same run"
echo "install test: ok"
