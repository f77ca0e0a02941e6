// Package boottest proves the A/B firmware switch on a real bootloader: Debian's U-Boot for
// qemu's virt machine runs dist/boot.cmd, Debian's arm64 kernel boots the slot it picks, and
// the arm64 wallphoned, as the system's init, updates, reboots, commits or is rolled back,
// under qemu-system-aarch64 with software emulation. Its tests run only under make test-boot
// (scripts/boot-deps.sh brings what they need); plain go test skips them. The package holds
// nothing but its tests.
package boottest
