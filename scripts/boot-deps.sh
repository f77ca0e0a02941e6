#!/usr/bin/env bash
# Installs from Debian what the boot tests (make test-boot) need, and unpacks the phone's own
# parts into DIR (default .run/boot/deps):
#   - on this machine: qemu-system-aarch64 (qemu-system-arm), U-Boot for qemu's virt machine
#     (u-boot-qemu), mkimage (u-boot-tools), mke2fs (e2fsprogs), sfdisk (fdisk);
#   - for the phone, arm64 packages fetched with apt-get download and unpacked with dpkg -x,
#     never installed: busybox-static:arm64 and the kernel linux-image-arm64:arm64 names
#     (DIR/busybox/bin/busybox, DIR/kernel/boot/vmlinuz-*, DIR/kernel/lib/modules/*).
# Safe to run again: it installs and downloads only what is missing, and says nothing then.
set -euo pipefail

dir=${1:-.run/boot/deps}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

want=(qemu-system-arm u-boot-qemu u-boot-tools e2fsprogs fdisk)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

missing=()
for pkg in "${want[@]}"; do
	installed "$pkg" || missing+=("$pkg")
done
need_arm=0
[ -x "$dir/busybox/bin/busybox" ] || need_arm=1
compgen -G "$dir/kernel/boot/vmlinuz-*" >/dev/null || need_arm=1
[ ${#missing[@]} -eq 0 ] && [ $need_arm -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
	echo "boot-deps: needed from Debian: ${missing[*]} busybox-static:arm64 linux-image-arm64:arm64" >&2
	exit 1
fi
dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64 && updated=0; }
# One index failing to download (a mirror in mid-sync) need not stop the install: apt-get then
# uses what it has, and what follows fails by itself if that is not enough.
update() {
	[ "${updated:-0}" = 1 ] && return
	apt-get update -qq || echo "boot-deps: apt-get update reported errors; going on with what it fetched" >&2
	updated=1
}
if [ ${#missing[@]} -gt 0 ]; then
	echo "boot-deps: installing ${missing[*]}"
	update
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# unpack PKG SUBDIR: the package's files under $dir/SUBDIR (a fresh copy).
unpack() {
	local tmp
	tmp=$(mktemp -d "$dir/.dl.XXXXXX")
	# Downloaded as root into the project's directory, which apt's sandbox user cannot write.
	get() { (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "$1" >/dev/null); }
	get "$1" || { update; get "$1"; }
	rm -rf "${dir:?}/$2.new"
	dpkg -x "$tmp"/*.deb "$dir/$2.new"
	rm -rf "$tmp" "${dir:?}/$2"
	mv "$dir/$2.new" "$dir/$2"
}
if [ ! -x "$dir/busybox/bin/busybox" ]; then
	echo "boot-deps: unpacking busybox-static:arm64"
	unpack busybox-static:arm64 busybox
fi
if ! compgen -G "$dir/kernel/boot/vmlinuz-*" >/dev/null; then
	# linux-image-arm64 is a meta package: the kernel is the versioned package it depends on.
	update
	kpkg=$(apt-cache depends linux-image-arm64:arm64 | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1)
	[ -n "$kpkg" ] || { echo "boot-deps: linux-image-arm64:arm64 names no kernel package" >&2; exit 1; }
	case $kpkg in *:arm64) ;; *) kpkg=$kpkg:arm64 ;; esac
	echo "boot-deps: unpacking $kpkg"
	unpack "$kpkg" kernel
fi
