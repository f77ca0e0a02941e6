#!/usr/bin/env bash
# The simulated phone's firmware update, end to end (make run-update): the vendor publishes a
# new build into the demo repository; the phone installs it into its other slot, reboots into
# it when idle, and commits it once healthy. Then a broken build is published: the phone
# installs it, the bootloader tries it up to its limit of boots and falls back, and the phone
# reports that version as failed and never installs it again by itself.
#
# Every part is the real one: wallphonectl signs with the demo's release key, the phone
# verifies and installs with the code a board runs, and the simulated bootloader
# (wallphoned --slots) reads the same U-Boot environment the boot script does. The phone runs
# on the virtual clock, so nothing waits for an update interval: it checks the repository
# once at each start. Its log is shown as it goes, each step after a line saying what comes.
set -euo pipefail

GO=${GO:-go}
DIR=${DIR:-.run/update}
STAMP=github.com/wallphone/wallphone/internal/version.stamp

rm -rf "$DIR"
mkdir -p "$DIR/bin/1" "$DIR/bin/2"
bin=$DIR/bin keys=$DIR/data-keys data=$DIR/data

step() { printf '\n== %s\n' "$*"; }

step "Building: wallphonectl, and wallphoned as versions 1 and 2 (the same source, stamped with -ldflags -X $STAMP=N)"
CGO_ENABLED=0 "$GO" build -o "$bin/" ./cmd/wallphonectl
CGO_ENABLED=0 "$GO" build -ldflags "-X $STAMP=1" -o "$bin/1/" ./cmd/wallphoned
CGO_ENABLED=0 "$GO" build -ldflags "-X $STAMP=2" -o "$bin/2/" ./cmd/wallphoned
# Version 3 never comes up: its agent exits at once, as a build that cannot start would.
printf '#!/bin/sh\necho "wallphoned 3: this build does not start" >&2\nexit 3\n' >"$bin/3"
chmod +x "$bin/3"
"$bin/wallphonectl" demo init "$keys" >/dev/null

publish() { # version image
	"$bin/wallphonectl" firmware publish --repo "$keys/repo" --image "$2" --version "$1" --hardware sim \
		--key "$keys/tuf/firmware.pem" --snapshot-key "$keys/tuf/snapshot.pem" --timestamp-key "$keys/tuf/timestamp.pem"
}

# boot starts the phone as a board powers on, from version 1's binary (the factory's: flashed
# into slot a at the first boot, and older than what an update puts there after). It feeds
# the phone its commands one at a time, each once the line before it appears in the log,
# because a reboot execs the new slot's build, which reads on from the same input. Pairs of
# arguments: a pattern in the log, then the command to send when it appears. It returns the
# phone's exit status.
boot() {
	local status=0 fifo=$DIR/fifo line
	rm -f "$fifo.in" "$fifo.out"
	mkfifo "$fifo.in" "$fifo.out"
	"$bin/1/wallphoned" --board sim --slots --clock virtual --vault none --data "$data" <"$fifo.in" >"$fifo.out" 2>&1 &
	local pid=$!
	local in out
	exec {in}>"$fifo.in" {out}<"$fifo.out"
	while IFS= read -r line <&"$out"; do
		printf '   %s\n' "$line"
		if (($# >= 2)) && [[ $line == *"$1"* ]]; then
			printf '   > %s\n' "$2"
			printf '%s\n' "$2" >&"$in" || true
			shift 2
		fi
	done
	exec {in}>&- {out}<&-
	wait "$pid" || status=$?
	return "$status"
}

step "The phone's first boot: version 1 is flashed into slot a and boots; the repository has no firmware for it"
boot "no firmware to install" quit

step "The vendor publishes version 2"
publish 2 "$bin/2/wallphoned"

step "The phone starts, installs version 2 into slot b, reboots into it once idle (a frame later), and version 2 commits once healthy"
boot "installed and verified" "wait 1s" "healthy and committed" quit

step "Slot b now holds version 2, and the bootloader boots it"
"$data/slots/b.img" --version

step "The vendor publishes version 3, a build that does not start"
publish 3 "$bin/3"

step "The phone installs version 3 into slot a and reboots into it: it does not start, and the board goes down"
status=0
boot "installed and verified" "wait 1s" || status=$?
echo "   (exit status $status)"

for n in 2 3; do
	step "Power on again: the bootloader tries version 3 again (boot $n of 3)"
	status=0
	boot || status=$?
	echo "   (exit status $status)"
done

step "Power on again: past its limit, the bootloader falls back to version 2, which reports version 3 as failed and does not install it again"
boot "no firmware to install" quit

step "Done: version 2 runs, committed; version 3 failed and is not retried. The phone's data is in $data"
