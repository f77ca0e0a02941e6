#!/usr/bin/env bash
# Regenerates the G.711 test vectors with SoX, an implementation independent of this package.
#
#   ulaw.enc, alaw.enc  SoX's encoding of every int16 from -32768 to 32767, in order, one byte
#                       each (65536 bytes)
#   ulaw.dec, alaw.dec  SoX's decoding of every byte from 0 to 255, in order, as signed 16-bit
#                       little-endian samples (512 bytes)
#
# SoX rounds a 16-bit sample to the nearest 14-bit (µ-law) or 13-bit (A-law) value before
# companding, where the ITU-T reference truncates; the tests use these files knowing that
# (see g711_test.go). -D turns off the dither that SoX would otherwise add when it drops bits,
# which would make the vectors random.
set -euo pipefail

cd "$(dirname "$0")"
command -v sox >/dev/null || { echo "gen.sh: sox is required (Debian package sox)" >&2; exit 1; }
command -v perl >/dev/null || { echo "gen.sh: perl is required" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

perl -e 'print pack("s<*", -32768 .. 32767)' >"$tmp/all.s16"
perl -e 'print pack("C*", 0 .. 255)' >"$tmp/all.bytes"

# -V1: SoX warns that the top few samples clip when rounded up; that is expected here.
s16=(-t raw -r 8000 -c 1 -e signed -b 16 -L)
sox -V1 -D "${s16[@]}" "$tmp/all.s16" -t raw -e u-law -b 8 "$tmp/ulaw.enc"
sox -V1 -D "${s16[@]}" "$tmp/all.s16" -t raw -e a-law -b 8 "$tmp/alaw.enc"
sox -V1 -D -t raw -r 8000 -c 1 -e u-law -b 8 "$tmp/all.bytes" "${s16[@]}" "$tmp/ulaw.dec"
sox -V1 -D -t raw -r 8000 -c 1 -e a-law -b 8 "$tmp/all.bytes" "${s16[@]}" "$tmp/alaw.dec"

for f in ulaw.enc alaw.enc ulaw.dec alaw.dec; do
	mv "$tmp/$f" "$f"
done
