#!/bin/sh
# Prints the Debian packages that hold the shared libraries BINARY loads, one per line, sorted:
# ldd resolves every library (the whole closure, as the dynamic loader would), dpkg -S names the
# package that installed it. The container image's runtime stage installs exactly these (apt
# adds nothing they do not depend on), so the list follows the binary instead of being kept by
# hand. Fails when a library is missing or belongs to no package.
#
#   deploy/image/runtime-packages.sh build/service/userpilot-gateway
set -eu
binary=${1:?usage: runtime-packages.sh BINARY}

libs=$(ldd "$binary") || { echo "runtime-packages: ldd $binary failed" >&2; exit 1; }
if printf '%s\n' "$libs" | grep -q 'not found'; then
  echo "runtime-packages: $binary needs libraries this system lacks:" >&2
  printf '%s\n' "$libs" | grep 'not found' >&2
  exit 1
fi

# `name => /path (addr)` and `/path (addr)` lines carry a path; linux-vdso has none.
paths=$(printf '%s\n' "$libs" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')

# dpkg records a library under the directory its package ships it in (/lib or /usr/lib), while
# ldd may print either name on a merged-/usr system: ask for both names, in one dpkg call (each
# call reads dpkg's whole file database).
candidates=$(printf '%s\n' "$paths" | while read -r p; do
  echo "$p"
  case $p in /usr/*) echo "${p#/usr}" ;; *) echo "/usr$p" ;; esac
done)
# shellcheck disable=SC2086  # one argument per path; paths hold no spaces
owners=$(dpkg -S $candidates 2>/dev/null | grep -v '^diversion ' || true)

# A here-document, not a pipe, so that `exit 1` leaves the script (dash has no pipefail).
packages=
while read -r p; do
  short=${p#/usr}
  # "pkg[:arch]: /path" -> pkg, for either name of the library.
  pkg=$(printf '%s\n' "$owners" |
    awk -v a="$short" -v b="/usr$short" '{path=$NF; sub(/:$/, "", $1)} path == a || path == b {print $1; exit}')
  if [ -z "$pkg" ]; then
    echo "runtime-packages: no Debian package holds $p" >&2
    exit 1
  fi
  packages="$packages${pkg%%:*}
"
done <<LIBS
$paths
LIBS
printf '%s' "$packages" | sort -u
