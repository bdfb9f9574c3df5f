#!/usr/bin/env bash
# Installs the buf CLI (npm package @bufbuild/buf, exact version from package-lock.json; the
# Linux binary comes inside the package) into DEST, from the npm registry, unless DEST already
# holds exactly that lock's packages. Used as the ctest fixture contract.npm_install, so a fresh
# machine needs nothing but node and npm (installed by scripts/install-deps.sh). The same steps
# as tests/deploy/npm_install.sh, for this folder's lock.
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)
dest=${1:?usage: npm_install.sh DEST}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
command -v npm >/dev/null || { echo "npm_install: npm not found: run scripts/install-deps.sh" >&2; exit 1; }
stamp="$dest/node_modules/.upgw-package-lock.sha256"
want=$(sha256sum "$src/package-lock.json" | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  echo "npm_install: $dest is up to date"
  exit 0
fi
cp "$src/package.json" "$src/package-lock.json" "$dest/"
cd "$dest"
npm ci --no-audit --no-fund --loglevel=error
"$dest/node_modules/.bin/buf" --version >/dev/null
echo "$want" >"$stamp"
echo "npm_install: installed buf $("$dest/node_modules/.bin/buf" --version) into $dest"
