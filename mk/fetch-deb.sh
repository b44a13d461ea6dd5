#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# mk/fetch-deb.sh [--cache DIR] (--hash FILE | --sha256 HEX) [--deb] [--depmod KVER]
#		PACKAGE VERSION
#
# Fetches one pinned Debian package with `apt-get download PACKAGE=VERSION`,
# checks the archive against a pinned SHA-256 and unpacks it with `dpkg-deb -x`.
# Nothing is installed on the build machine and no maintainer script runs.
# Prints the directory the package was unpacked into (or, with --deb, the path
# of the .deb) on stdout; everything else goes to stderr.
#
#	--cache DIR    download and unpack under DIR (default ${IMAGER_CACHE:-$O/cache}):
#	               DIR/dl/NAME.deb and DIR/deb/PACKAGE_VERSION/
#	--hash FILE    a Buildroot-style hash file: lines "sha256  HEX  NAME.deb"
#	--sha256 HEX   the archive's hash given directly
#	--deb          only download and check; print the .deb's path
#	--depmod KVER  after unpacking a kernel package, run `depmod -b ROOT KVER`
#	               (Debian's .debs ship no modules.dep)
# IMAGER_OFFLINE=1 never downloads: a missing or mismatching archive is an error.
#
# A cached archive is re-checked on every call; a wrong one is fetched again
# and then must match. Parallel callers serialise on DIR/.lock. When the
# archive has moved on (a Debian point release replaced the version), the
# download fails: bump the version and the hash (see kconfig/Config.boot.in
# and tests/fixtures/kernel.version).
set -euo pipefail

prog=${0##*/}
die() { echo "$prog: $*" >&2; exit 1; }

cache=${IMAGER_CACHE:-${O:+$O/cache}}
hash_file= sha256= want_deb= depmod_kver=
while [ $# -gt 0 ]; do
	case $1 in
	--cache) cache=$2; shift 2 ;;
	--hash) hash_file=$2; shift 2 ;;
	--sha256) sha256=$2; shift 2 ;;
	--deb) want_deb=1; shift ;;
	--depmod) depmod_kver=$2; shift 2 ;;
	--) shift; break ;;
	-*) die "unknown option '$1'" ;;
	*) break ;;
	esac
done
[ $# -eq 2 ] || die "usage: $prog [--cache DIR] (--hash FILE|--sha256 HEX) [--deb] [--depmod KVER] PACKAGE VERSION"
[ -n "$cache" ] || die "no cache directory: pass --cache, or set IMAGER_CACHE or O"
[ -n "$hash_file$sha256" ] || die "refusing to fetch an archive without a pinned hash (--hash or --sha256)"
pkg=$1 version=$2
case $pkg/$version in
/* | */ | */*/* | *' '*) die "bad package name or version '$pkg' '$version'" ;;
esac

# apt-get download names the file PACKAGE_VERSION_ARCH.deb with the epoch's
# ':' written as %3a; the architecture (amd64 or all) is not known up front
ver_file=${version//:/%3a}
mkdir -p "$cache/dl" "$cache/deb"
cache=$(cd "$cache" && pwd)

# expected_hash NAME.deb: from --sha256, or the hash file's line for NAME
expected_hash() {
	if [ -n "$sha256" ]; then
		echo "$sha256"
		return
	fi
	[ -r "$hash_file" ] || die "cannot read hash file '$hash_file'"
	awk -v n="$1" '$1 == "sha256" && $3 == n { print $2; found = 1 } END { exit !found }' \
		"$hash_file" || return 1
}

# check NAME.deb: 0 if DIR/dl/NAME.deb exists and matches its pinned hash
check() {
	local want
	[ -f "$cache/dl/$1" ] || return 1
	want=$(expected_hash "$1") ||
		die "no 'sha256' line for $1 in $hash_file; if this version is intended, add:
sha256  $(sha256sum <"$cache/dl/$1" | cut -c1-64)  $1"
	echo "$want  $cache/dl/$1" | sha256sum -c --status
}

find_deb() {
	local f
	for f in "$cache/dl/${pkg}_${ver_file}"_*.deb; do
		[ -f "$f" ] && { basename "$f"; return 0; }
	done
	return 1
}

fetch() {
	local tmp name apt_opts=()
	tmp=$(mktemp -d "$cache/dl/.tmp.XXXXXX")
	# apt drops to the _apt user to download, which cannot write into a
	# root-owned private directory: keep the download as root instead
	[ "$(id -u)" -ne 0 ] || apt_opts=(-o APT::Sandbox::User=root)
	# apt's lists may be missing or stale on a fresh machine
	if ! (cd "$tmp" && apt-get "${apt_opts[@]}" download -q "$pkg=$version" >&2); then
		echo "$prog: retrying after apt-get update" >&2
		apt-get update -q >&2 || true
		(cd "$tmp" && apt-get "${apt_opts[@]}" download -q "$pkg=$version" >&2) || {
			rm -rf "$tmp"
			die "cannot download $pkg=$version (has the Debian archive moved on? bump the pin)"
		}
	fi
	name=$(cd "$tmp" && ls -- *.deb)
	[ "$(echo "$name" | wc -l)" -eq 1 ] || die "apt-get download gave '$name'"
	mv -f "$tmp/$name" "$cache/dl/$name"
	rm -rf "$tmp"
}

exec 9>"$cache/.lock"
flock 9

name=$(find_deb) || name=
if [ -z "$name" ] || ! check "$name"; then
	if [ -n "${IMAGER_OFFLINE:-}" ]; then
		[ -n "$name" ] || die "$pkg=$version is not in $cache/dl and IMAGER_OFFLINE is set"
		die "$cache/dl/$name does not match its pinned sha256 ($(sha256sum <"$cache/dl/$name" | cut -c1-64))"
	fi
	[ -z "$name" ] || { echo "$prog: $name does not match its pinned hash, fetching again" >&2; rm -f "$cache/dl/$name"; }
	fetch
	name=$(find_deb) || die "apt-get download did not produce ${pkg}_${ver_file}_*.deb"
	check "$name" || die "$cache/dl/$name does not match its pinned sha256 ($(sha256sum <"$cache/dl/$name" | cut -c1-64))"
fi
if [ -n "$want_deb" ]; then
	echo "$cache/dl/$name"
	exit 0
fi

# unpacked trees are keyed by the archive's hash too, so a re-pinned archive
# of the same version is never mixed up with an old tree
root=$cache/deb/${pkg}_${ver_file}
stamp=$(sha256sum <"$cache/dl/$name" | cut -c1-64)
if [ "$(cat "$root/.complete" 2>/dev/null || true)" != "$stamp" ]; then
	rm -rf "$root.tmp" "$root"
	dpkg-deb -x "$cache/dl/$name" "$root.tmp"
	echo "$stamp" >"$root.tmp/.complete"
	mv "$root.tmp" "$root"
fi
if [ -n "$depmod_kver" ] && [ ! -s "$root/lib/modules/$depmod_kver/modules.dep" ]; then
	[ -d "$root/lib/modules/$depmod_kver" ] || die "$pkg has no lib/modules/$depmod_kver"
	command -v depmod >/dev/null || PATH=$PATH:/usr/sbin:/sbin
	depmod -b "$root" "$depmod_kver" || die "depmod failed on $root"
fi
echo "$root"
