// Package bootenv reads and writes U-Boot's environment, the bootloader's state that decides
// which firmware slot boots, and holds the boot logic that U-Boot runs from dist/boot.cmd.
//
// It keeps the bootloader half of promise 6 ("a firmware update never leaves a phone without a
// working slot"): a new slot is booted on trial a limited number of times, and the bootloader
// falls back to the last good slot unless the agent commits it.
//
// # Format
//
// The environment is the image U-Boot's saveenv and libubootenv's fw_setenv write, so the agent,
// fw_printenv and the bootloader all read the same bytes:
//
//	crc32 (little-endian, IEEE, over the data area)
//	flag  (one byte, only in a redundant environment)
//	data  "name=value\0name=value\0\0", padded with zeros to the configured size
//
// Variables are kept sorted by name, as fw_setenv and saveenv write them. Where an image names
// a variable twice, the last one wins; entries without '=' or with an empty name are skipped, as
// libubootenv does.
//
// A redundant environment has two copies (two lines in fw_env.config). A copy counts when its
// CRC matches and its data ends in an empty entry; of two such copies the one with the higher
// flag is in use, except that 0 follows 255. Save writes the copy not in use, with the flag one
// higher, and syncs it, so a write torn by a power cut leaves the other copy in use: the
// environment is never lost. With one copy, Save rewrites it in place and a torn write loses it;
// the bootloader then falls back to its built-in defaults, which boot slot a.
//
// Where the environment lives is given by a [Config], parsed from the fw_env.config format by
// [ParseConfig]: a regular file (the simulated phone), a block device or partition, or a NOR
// flash MTD character device, which is erased before it is written. NAND MTD devices (bad block
// skipping) and UBI volumes are not supported.
//
// An [Env] is not safe for concurrent use, and nothing stops another process (fw_setenv) from
// writing between [Open] and [Env.Save].
//
// # Boot logic
//
// [Decide] is what dist/boot.cmd does on every boot, as a pure function; the simulated phone runs
// it through [Boot] at start in place of U-Boot. The variables, all read and written by both:
//
//	boot_slot          the slot to boot: "a" or "b" (anything else: good_slot)
//	good_slot          the last committed slot, the fallback: "a" or "b" (anything else: "a")
//	upgrade_available  "1" while boot_slot is on trial; anything else: not on trial
//	bootcount          boots counted on trial, hexadecimal (unset: 0)
//	bootlimit          trial boots allowed before falling back, hexadecimal (unset: 3)
//	failed_slot        set to the slot given up on when the count passed the limit
//
// The two numbers are hexadecimal because U-Boot's setexpr writes and itest reads them so; below
// ten it makes no difference. On trial, each boot adds one to bootcount and saves; when bootcount
// passes bootlimit, boot_slot returns to good_slot, upgrade_available becomes 0 and failed_slot
// names the slot that failed. Off trial, nothing is written, so a committed phone does not wear
// its flash on every boot. The script tells the kernel which slot it booted, as
// wallphone.slot=a or wallphone.slot=b on the command line. [MarkTrial] puts a freshly written slot on trial and [Commit] makes
// the running slot the good one; both clear failed_slot.
package bootenv
