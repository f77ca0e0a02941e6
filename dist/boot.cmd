# wallphone's U-Boot boot script: two root filesystem slots, a new one booted on trial and
# given up after bootlimit boots unless the agent commits it. It does what Decide in
# firmware/bootenv does, whose package doc explains the variables; a test there checks that the
# two use the same names.
#
# For U-Boot without CONFIG_BOOTCOUNT_LIMIT: the count lives in the environment and is saved
# with saveenv. Numbers are hexadecimal, as setexpr writes and itest reads them. Build it with
#   mkimage -A arm64 -O linux -T script -C none -n wallphone -d boot.cmd boot.scr
# and put boot.scr where distro_bootcmd finds it (/boot.scr or /boot/boot.scr on the first
# partition), which sets devtype and devnum before running it.
#
# Board settings, with defaults for qemu's virt machine (set others in the board's default
# environment):
#   slot_a_part, slot_b_part  the slots' partitions on ${devtype} ${devnum} (2 and 3)
#   root_prefix               the kernel's name for that disk's partitions (/dev/vda)
#   kernel_file               the kernel in each slot, an uncompressed arm64 Image (/boot/Image)
#   initrd_file               an initramfs in each slot, loaded when there (/boot/initrd): a
#                             kernel whose disk and file system drivers are modules needs one
#   fdtfile                   a device tree under the slot's /boot/dtbs/; unset: U-Boot's own
#   console_args              the kernel's console and verbosity (console=ttyAMA0 quiet)
#   state_load, state_save    where the state variables live, when not in U-Boot's own
#                             environment: a command to run that loads them, and one that
#                             saves them (unset: none, the environment being loaded already,
#                             and saveenv); the boot test's qemu board keeps them on its disk (README)
#
# The kernel is told panic=1: a kernel that panics (an init that dies, the agent when it is
# init) reboots at once, which on trial counts as a failed boot.

# The state, with the defaults Decide applies.
if test -n "${state_load}"; then run state_load; fi
if test "${good_slot}" != a && test "${good_slot}" != b; then setenv good_slot a; fi
if test "${boot_slot}" != a && test "${boot_slot}" != b; then setenv boot_slot ${good_slot}; fi
if test -z "${bootlimit}"; then setenv bootlimit 3; fi
if test -z "${bootcount}"; then setenv bootcount 0; fi

# On trial: count this boot; past the limit, back to the good slot. Saved before the kernel
# loads, so that a boot that hangs or resets still counts. Off trial nothing is written.
if test "${upgrade_available}" = 1; then
	setexpr bootcount ${bootcount} + 1
	if itest ${bootcount} -gt ${bootlimit}; then
		echo "wallphone: slot ${boot_slot} not committed after ${bootlimit} boots; back to slot ${good_slot}"
		setenv failed_slot ${boot_slot}
		setenv boot_slot ${good_slot}
		setenv upgrade_available 0
	fi
	if test -n "${state_save}"; then run state_save; else saveenv; fi
fi

if test -z "${slot_a_part}"; then setenv slot_a_part 2; fi
if test -z "${slot_b_part}"; then setenv slot_b_part 3; fi
if test -z "${root_prefix}"; then setenv root_prefix /dev/vda; fi
if test -z "${kernel_file}"; then setenv kernel_file /boot/Image; fi
if test -z "${initrd_file}"; then setenv initrd_file /boot/initrd; fi
if test -z "${console_args}"; then setenv console_args "console=ttyAMA0 quiet"; fi
if test "${boot_slot}" = b; then setenv slot_part ${slot_b_part}; else setenv slot_part ${slot_a_part}; fi

echo "wallphone: booting slot ${boot_slot} (trial ${upgrade_available}, boot ${bootcount} of ${bootlimit})"
# wallphone.slot tells the agent which slot it runs from.
setenv bootargs "${console_args} panic=1 root=${root_prefix}${slot_part} ro rootwait wallphone.slot=${boot_slot}"
if ext4load ${devtype} ${devnum}:${slot_part} ${kernel_addr_r} ${kernel_file}; then
	setenv initrd_arg -
	if ext4load ${devtype} ${devnum}:${slot_part} ${ramdisk_addr_r} ${initrd_file}; then
		setenv initrd_arg ${ramdisk_addr_r}:${filesize}
	fi
	if test -n "${fdtfile}" && ext4load ${devtype} ${devnum}:${slot_part} ${fdt_addr_r} /boot/dtbs/${fdtfile}; then
		booti ${kernel_addr_r} ${initrd_arg} ${fdt_addr_r}
	fi
	booti ${kernel_addr_r} ${initrd_arg} ${fdtcontroladdr}
fi

# The slot did not boot. On trial, reset: the reboot counts as a failed boot, and past the
# limit the good slot boots. Off trial, return to distro_bootcmd, which tries its other targets.
echo "wallphone: slot ${boot_slot} did not boot"
if test "${upgrade_available}" = 1; then reset; fi
