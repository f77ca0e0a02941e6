package boottest

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// The phone's disk, built from Debian's parts and this checkout: a partition with the boot
// script, two slots, and the agent's data. A slot is an ext4 file system holding the kernel,
// an initramfs that loads the kernel's disk, file system and network drivers (modules in
// Debian's kernel) and mounts the slot, busybox, the arm64 wallphoned and the /init that
// starts it. A firmware release is a whole slot image; versions differ only in wallphoned's
// version stamp, and the file systems are built reproducibly (fixed UUID, hash seed and
// times), so that an update fetches only the blocks where the builds differ.

// Partitions of the disk, in 512-byte sectors. dist/boot.cmd's defaults for qemu's virt
// machine put the slots at partitions 2 and 3 of the first virtio disk.
const (
	sector     = 512
	bootStart  = 2048
	bootSize   = 8 << 20 / sector
	slotSize   = 64 << 20 / sector
	slotAStart = bootStart + bootSize
	slotBStart = slotAStart + slotSize
	dataStart  = slotBStart + slotSize
	dataSize   = 128 << 20 / sector
	diskSize   = (dataStart + dataSize) * sector
)

// hardware is the virtual machine's name in firmware releases.
const hardware = "qemu"

// Reproducible file systems: every build of the same tree is the same bytes.
const (
	fsUUID     = "5a11b0a7-0000-4000-8000-000000000017"
	fsHashSeed = "5a11b0a7-0000-4000-8000-0000000000ff"
	fsTime     = 1700000000 // files' times and the file system's own
)

// modulesWanted are the kernel modules the phone needs, which the initramfs loads with
// everything they depend on: the disk and the network on virtio PCI, and ext4 with the
// checksum it asks for by name (a soft dependency, which .modinfo does not list as one).
var modulesWanted = []string{"virtio_pci", "virtio_blk", "virtio_net", "crc32c_generic", "ext4"}

// parts are what every scenario shares, built once per test run.
type parts struct {
	dir       string
	deps      string // scripts/boot-deps.sh's directory
	root      string // the module's root
	ctl       string // wallphonectl for this machine
	kernel    string // the arm64 Image
	initrd    []byte // the initramfs (newc cpio)
	bootImage string // partition 1: boot.scr

	mu    sync.Mutex         // guards slots
	slots map[release]string // a release's slot image (see slot)
}

// release is a version as built: good, or broken.
type release struct {
	version uint64
	broken  bool
}

// slot returns the slot image of version v, built the first time it is asked for.
// A broken one's /init gives up at once: its agent never starts.
func (p *parts) slot(v uint64, broken bool) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if path, ok := p.slots[release{v, broken}]; ok {
		return path, nil
	}
	bin := filepath.Join(p.dir, fmt.Sprintf("wallphoned-%d", v))
	if err := p.goBuild(bin, "./cmd/wallphoned", "linux", "arm64", "-X github.com/wallphone/wallphone/internal/version.stamp="+fmt.Sprint(v)); err != nil {
		return "", err
	}
	tree := filepath.Join(p.dir, fmt.Sprintf("slot-%d", v))
	if broken {
		tree += "-broken"
	}
	if err := p.slotTree(tree, bin, broken); err != nil {
		return "", err
	}
	img := tree + ".img"
	if err := mkext4(tree, img, slotSize*sector, false); err != nil {
		return "", err
	}
	if err := os.RemoveAll(tree); err != nil {
		return "", err
	}
	p.slots[release{v, broken}] = img
	return img, nil
}

func buildParts(dir, deps string) (*parts, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOMOD: %w", err)
	}
	p := &parts{dir: dir, deps: deps, root: filepath.Dir(strings.TrimSpace(string(out))),
		slots: map[release]string{}}
	p.ctl = filepath.Join(dir, "wallphonectl")
	if err := p.goBuild(p.ctl, "./cmd/wallphonectl", "", "", ""); err != nil {
		return nil, err
	}
	kernels, _ := filepath.Glob(filepath.Join(deps, "kernel", "boot", "vmlinuz-*"))
	if len(kernels) != 1 {
		return nil, fmt.Errorf("want one kernel in %s/kernel/boot, found %q: run scripts/boot-deps.sh", deps, kernels)
	}
	// Debian's arm64 vmlinuz is an uncompressed Image (an EFI stub in front), which booti takes.
	p.kernel = kernels[0]
	kernelRelease := strings.TrimPrefix(filepath.Base(p.kernel), "vmlinuz-")
	if p.initrd, err = initramfs(filepath.Join(deps, "busybox", "bin", "busybox"),
		filepath.Join(deps, "kernel", "lib", "modules", kernelRelease)); err != nil {
		return nil, err
	}
	boot := filepath.Join(dir, "boot")
	if err := os.MkdirAll(boot, 0o755); err != nil {
		return nil, err
	}
	script, err := os.ReadFile(filepath.Join(p.root, "dist", "boot.cmd"))
	if err != nil {
		return nil, err
	}
	cmd := filepath.Join(dir, "boot.cmd")
	if err := os.WriteFile(cmd, append([]byte(boardSettings), script...), 0o644); err != nil {
		return nil, err
	}
	if b, err := exec.Command("mkimage", "-A", "arm64", "-O", "linux", "-T", "script", "-C", "none", "-n", "wallphone",
		"-d", cmd, filepath.Join(boot, "boot.scr")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mkimage: %v: %s", err, b)
	}
	p.bootImage = boot + ".img"
	if err := mkext4(boot, p.bootImage, bootSize*sector, false); err != nil {
		return nil, err
	}
	return p, nil
}

// goBuild builds pkg of this module into out; goos "" is this machine.
func (p *parts) goBuild(out, pkg, goos, goarch, ldflags string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", strings.TrimSpace("-s -w "+ldflags), "-o", out, pkg)
	cmd.Dir = p.root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if goos != "" {
		cmd.Env = append(cmd.Env, "GOOS="+goos, "GOARCH="+goarch)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v: %s", pkg, err, b)
	}
	return nil
}

// slotInit is the slot's /init, the system's first process: it mounts what the agent needs,
// brings up the network qemu's user-mode networking expects, and becomes wallphoned, which so
// runs as init: its reboot is reboot(2), and its end a kernel panic (which reboots: panic=1).
const slotInit = `#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
mount -t ext4 -o rw,noatime /dev/vda4 /var/lib/wallphone || echo "init: no data partition"
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ip route add default via 10.0.2.2
exec /usr/bin/wallphoned --board sim --firmware /etc/wallphone/firmware.json --clock virtual --log json \
	--data /var/lib/wallphone --demo-keys /var/lib/wallphone/demo --vault none
`

// brokenInit is a broken release's /init: it gives up at once, so the kernel panics and the
// board reboots without the agent ever starting.
const brokenInit = `#!/bin/sh
echo "init: this firmware is broken and gives up"
exit 1
`

// slotFirmware is --firmware in the slot: a board file's firmware section, the slots being the
// disk's partitions 2 and 3 as dist/boot.cmd boots them.
const slotFirmware = `{"hardware": "qemu", "slot_a": "/dev/vda2", "slot_b": "/dev/vda3", "env_config": "/etc/fw_env.config"}
`

// The boot state's place on the disk: in the gap before the first partition, one copy in
// U-Boot's environment format, as many eMMC boards keep their environment. Not in U-Boot's own
// environment in flash: Debian 12's qemu (7.2) fails U-Boot's buffered flash writes, so
// saveenv cannot work there (qemu issue 2343), and Debian's arm64 kernel has no driver for the
// virt machine's CFI flash. boardSettings tells dist/boot.cmd, and fwEnvConfig the agent.
const (
	stateOffset = 0x40000
	stateSize   = 0x40000
)

// boardSettings go before dist/boot.cmd in the qemu board's boot.scr: its state_load and
// state_save, U-Boot's own env import and export (with the CRC) of the state variables, read
// and written with virtio read and write at stateOffset (in 512-byte blocks), through memory
// the script does not otherwise use (pxefile_addr_r, below the kernel's).
var boardSettings = fmt.Sprintf(`# The qemu board of wallphone's boot test: the state lives on the disk at %#x.
setenv state_load 'virtio read ${pxefile_addr_r} %#x %#x && env import -c ${pxefile_addr_r} %#x'
setenv state_save 'env export -c -s %#x ${pxefile_addr_r} boot_slot good_slot upgrade_available bootcount bootlimit failed_slot && virtio write ${pxefile_addr_r} %#x %#x'
`, stateOffset, stateOffset/sector, stateSize/sector, stateSize, stateSize, stateOffset/sector, stateSize/sector)

// fwEnvConfig tells the agent where the state is: the whole disk at stateOffset.
var fwEnvConfig = fmt.Sprintf("# the boot state: U-Boot's environment format, one copy\n/dev/vda %#x %#x\n", stateOffset, stateSize)

// applets are the busybox commands the two init scripts use.
var applets = []string{"sh", "mount", "umount", "insmod", "switch_root", "sleep", "ip", "cat", "echo", "mkdir", "sync"}

func (p *parts) slotTree(tree, bin string, broken bool) error {
	if err := os.RemoveAll(tree); err != nil {
		return err
	}
	for _, d := range []string{"bin", "boot", "dev", "proc", "sys", "tmp", "etc/wallphone", "usr/bin", "var/lib/wallphone"} {
		if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
			return err
		}
	}
	init := slotInit
	if broken {
		init = brokenInit
	}
	files := []struct {
		path string
		mode fs.FileMode
		from string
		data []byte
	}{
		{"init", 0o755, "", []byte(init)},
		{"bin/busybox", 0o755, filepath.Join(p.deps, "busybox", "bin", "busybox"), nil},
		{"usr/bin/wallphoned", 0o755, bin, nil},
		{"boot/Image", 0o644, p.kernel, nil},
		{"boot/initrd", 0o644, "", p.initrd},
		{"etc/fw_env.config", 0o644, "", []byte(fwEnvConfig)},
		{"etc/wallphone/firmware.json", 0o644, "", []byte(slotFirmware)},
	}
	for _, f := range files {
		data := f.data
		if f.from != "" {
			var err error
			if data, err = os.ReadFile(f.from); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(tree, f.path), data, f.mode); err != nil {
			return err
		}
	}
	for _, a := range applets {
		if err := os.Symlink("busybox", filepath.Join(tree, "bin", a)); err != nil {
			return err
		}
	}
	return nil
}

// mkext4 makes an ext4 image of size bytes holding tree, the same bytes for the same tree:
// fixed UUID and hash seed, every time set to fsTime. A slot is mounted read-only and needs no
// journal; the data partition has one.
func mkext4(tree, img string, size int64, journal bool) error {
	t := time.Unix(fsTime, 0)
	if err := filepath.WalkDir(tree, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(path, t, t)
	}); err != nil {
		return err
	}
	if err := os.Remove(img); err != nil && !os.IsNotExist(err) {
		return err
	}
	features := "^has_journal"
	if journal {
		features = "has_journal"
	}
	cmd := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-O", features, "-U", fsUUID,
		"-E", "hash_seed="+fsHashSeed+",root_owner=0:0", "-d", tree, img, fmt.Sprintf("%dk", size>>10))
	cmd.Env = append(os.Environ(), fmt.Sprintf("E2FSPROGS_FAKE_TIME=%d", fsTime))
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mke2fs %s: %v: %s", img, err, b)
	}
	return nil
}

// initrdInit loads the modules in /modules (in order: each after what it depends on), waits
// for root= and mounts it read-only, and hands over to the slot's /init.
const initrdInit = `#!/bin/busybox sh
/bin/busybox mkdir -p /bin /proc /sys /newroot
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read m; do insmod /lib/modules/$m.ko || echo "initrd: insmod $m failed"; done < /modules
for a in $(cat /proc/cmdline); do case $a in root=*) root=${a#root=};; esac; done
i=0
while [ ! -b "$root" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
mount -t ext4 -o ro "$root" /newroot || { echo "initrd: cannot mount root $root"; exit 1; }
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /init
`

// initramfs is a newc cpio archive with busybox, the modules the phone needs and initrdInit.
func initramfs(busybox, modDir string) ([]byte, error) {
	mods, err := moduleOrder(modDir, modulesWanted)
	if err != nil {
		return nil, err
	}
	var w cpioWriter
	for _, d := range []string{"bin", "dev", "lib", "lib/modules", "newroot", "proc", "sys"} {
		w.add(d, 0o040755, nil)
	}
	w.node("dev/console", 0o020600, 5, 1)
	w.add("init", 0o100755, []byte(initrdInit))
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return nil, err
	}
	w.add("bin/busybox", 0o100755, bb)
	var list bytes.Buffer
	for _, m := range mods {
		b, err := os.ReadFile(m.path)
		if err != nil {
			return nil, err
		}
		w.add("lib/modules/"+m.name+".ko", 0o100644, b)
		fmt.Fprintln(&list, m.name)
	}
	w.add("modules", 0o100644, list.Bytes())
	return w.close(), nil
}

type module struct{ name, path string }

// moduleOrder is wanted with every module they depend on (read from each module's .modinfo,
// as depmod does), each after its dependencies.
func moduleOrder(dir string, wanted []string) ([]module, error) {
	paths := map[string]string{}
	if err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".ko") {
			paths[strings.ReplaceAll(strings.TrimSuffix(d.Name(), ".ko"), "-", "_")] = path
		}
		return err
	}); err != nil {
		return nil, err
	}
	var order []module
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string) error
	visit = func(name string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("module %s depends on itself", name)
		case 2:
			return nil
		}
		path, ok := paths[name]
		if !ok {
			return fmt.Errorf("module %s not in %s", name, dir)
		}
		state[name] = 1
		deps, err := moduleDepends(path)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, module{name, path})
		return nil
	}
	for _, w := range wanted {
		if err := visit(w); err != nil {
			return nil, err
		}
	}
	return order, nil
}

func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("%s: no .modinfo", path)
	}
	b, err := sec.Data()
	if err != nil {
		return nil, err
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			var deps []string
			for _, d := range strings.Split(string(v), ",") {
				if d != "" {
					deps = append(deps, strings.ReplaceAll(d, "-", "_"))
				}
			}
			sort.Strings(deps)
			return slices.Compact(deps), nil
		}
	}
	return nil, nil
}

// cpioWriter writes the newc format the kernel unpacks an initramfs from.
type cpioWriter struct {
	buf bytes.Buffer
	ino uint32
}

func (w *cpioWriter) header(name string, mode uint32, size int, major, minor uint32) {
	w.ino++
	nlink := uint32(1)
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	fmt.Fprintf(&w.buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		w.ino, mode, 0, 0, nlink, fsTime, size, 0, 0, major, minor, len(name)+1, 0)
	w.buf.WriteString(name)
	w.buf.WriteByte(0)
	w.pad()
}

func (w *cpioWriter) pad() {
	for w.buf.Len()%4 != 0 {
		w.buf.WriteByte(0)
	}
}

func (w *cpioWriter) add(name string, mode uint32, data []byte) {
	w.header(name, mode, len(data), 0, 0)
	w.buf.Write(data)
	w.pad()
}

func (w *cpioWriter) node(name string, mode uint32, major, minor uint32) {
	w.header(name, mode, 0, major, minor)
}

func (w *cpioWriter) close() []byte {
	w.ino = 0
	w.header("TRAILER!!!", 0, 0, 0, 0)
	return w.buf.Bytes()
}

// newDisk writes the phone's disk to path: the partition table (sfdisk), the boot partition,
// slot a holding factory, slot b empty, and the data partition made from dataTree.
func newDisk(path, factory, bootImage, dataTree string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(diskSize); err != nil {
		return err
	}
	table := fmt.Sprintf("label: dos\nunit: sectors\n\nstart=%d, size=%d, type=83\nstart=%d, size=%d, type=83\nstart=%d, size=%d, type=83\nstart=%d, size=%d, type=83\n",
		bootStart, bootSize, slotAStart, slotSize, slotBStart, slotSize, dataStart, dataSize)
	cmd := exec.Command("sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", path)
	cmd.Stdin = strings.NewReader(table)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sfdisk: %v: %s", err, b)
	}
	data := path + ".data"
	if err := mkext4(dataTree, data, dataSize*sector, true); err != nil {
		return err
	}
	defer os.Remove(data)
	for _, part := range []struct {
		img   string
		start int64
	}{{bootImage, bootStart}, {factory, slotAStart}, {data, dataStart}} {
		src, err := os.Open(part.img)
		if err != nil {
			return err
		}
		_, err = copySparse(f, src, part.start*sector)
		src.Close()
		if err != nil {
			return err
		}
	}
	return f.Sync()
}

// copySparse copies src into dst at off, skipping blocks of zeros (the file stays sparse).
func copySparse(dst *os.File, src io.Reader, off int64) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	for {
		m, err := io.ReadFull(src, buf)
		if m > 0 {
			for i := 0; i < m; i += 4096 {
				blk := buf[i:min(i+4096, m)]
				if !allZero(blk) {
					if _, werr := dst.WriteAt(blk, off+n+int64(i)); werr != nil {
						return n, werr
					}
				}
			}
			n += int64(m)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// fileSHA256 is the SHA-256 of a file's first n bytes (all of it: n < 0) at offset off.
func fileSHA256(path string, off, n int64) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	r := io.Reader(io.NewSectionReader(f, off, 1<<62))
	if n >= 0 {
		r = io.LimitReader(r, n)
	}
	h := sha256.New()
	m, err := io.Copy(h, r)
	if err != nil {
		return sum, err
	}
	if n >= 0 && m != n {
		return sum, fmt.Errorf("%s: %d bytes at %d, want %d", path, m, off, n)
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// blocksNotIn counts the 4 KiB blocks of img that appear nowhere in base, as a delta update
// fetches them: the bytes an update from base to img should download.
func blocksNotIn(img, base string) (int64, error) {
	have := map[[32]byte]bool{}
	each := func(path string, f func(sum [32]byte)) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i := 0; i < len(b); i += 4096 {
			f(sha256.Sum256(b[i:min(i+4096, len(b))]))
		}
		return nil
	}
	if err := each(base, func(s [32]byte) { have[s] = true }); err != nil {
		return 0, err
	}
	var n int64
	err := each(img, func(s [32]byte) {
		if !have[s] {
			n += 4096
		}
	})
	return n, err
}
