#!/bin/bash
# Installs the Debian packages listed in mk/packages.txt. Idempotent: does
# nothing when all are present; runs `apt-get update` only when something is
# missing; fails loudly naming what could not be installed.
set -euo pipefail
list=${1:-$(dirname "$0")/packages.txt}
mapfile -t want < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$list" | tr -d ' \t')
missing=()
for p in "${want[@]}"; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo apt-get update -q >&2 || { echo "deps: apt-get update failed" >&2; exit 1; }
if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
	"${missing[@]}" >&2; then
	echo "deps: could not install: ${missing[*]}" >&2
	exit 1
fi
for p in "${missing[@]}"; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = installed ] || { echo "deps: package '$p' is still not installed" >&2; exit 1; }
done
