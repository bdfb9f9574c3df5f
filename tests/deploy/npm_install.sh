#!/usr/bin/env bash
# Installs the validator's npm packages (exact versions from package-lock.json) into DEST, from
# the npm registry, unless DEST already holds exactly that lock's packages. Used as the ctest
# fixture deploy.npm_install, so a fresh machine needs nothing but node and npm (installed by
# scripts/install-deps.sh).
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
echo "$want" >"$stamp"
echo "npm_install: installed $(ls node_modules | wc -l) packages into $dest"
