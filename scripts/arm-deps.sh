#!/usr/bin/env bash
# Installs from Debian what the cgo builds with PortAudio (make build-cgo) and the ARM test runs
# (make test-arm) need: PortAudio's headers for the build machine and, through multiarch, for
# arm64 and armhf; the cross compilers with their C libraries; and qemu-user to run ARM test
# binaries here. Safe to run again: it installs only what is missing, and says nothing then.
set -euo pipefail

native=$(dpkg --print-architecture)
want=(
	pkg-config
	"portaudio19-dev:$native"
	gcc-aarch64-linux-gnu libc6-dev-arm64-cross portaudio19-dev:arm64
	gcc-arm-linux-gnueabihf libc6-dev-armhf-cross portaudio19-dev:armhf
	qemu-user-static
)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

missing=()
for pkg in "${want[@]}"; do
	installed "$pkg" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
	echo "arm-deps: needed from Debian: ${missing[*]}" >&2
	exit 1
fi
echo "arm-deps: installing ${missing[*]}"
for arch in arm64 armhf; do
	dpkg --print-foreign-architectures | grep -qx "$arch" || dpkg --add-architecture "$arch"
done
# One index failing to download (a mirror in mid-sync) need not stop the install: apt-get then
# uses what it has, and the install below fails by itself if that is not enough.
apt-get update -qq || echo "arm-deps: apt-get update reported errors; installing with what it fetched" >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
