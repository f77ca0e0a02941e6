package bootenv

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// maxSize bounds an environment's size so that a wrong configuration cannot make Open allocate
// without limit; real environments are 8 to 256 KiB.
const maxSize = 16 << 20

// Config says where the environment lives: one copy, or two for a redundant environment.
type Config struct {
	Copies []Location
}

// Location is one copy of the environment, one line of fw_env.config.
type Location struct {
	Path   string // a regular file, a block device or an MTD character device
	Offset int64  // of the copy in Path; negative: from the end of a block device
	Size   int    // of the copy, header included; the same for both copies

	// SectorSize is the flash erase size for an MTD device (0: the device's own); Sectors the
	// number of sectors for NAND. Both are kept from the configuration and otherwise unused
	// except to check a NOR copy's alignment.
	SectorSize int64
	Sectors    int64
}

// Redundant reports whether the environment has two copies.
func (c Config) Redundant() bool { return len(c.Copies) == 2 }

// ReadConfig reads the fw_env.config file at path.
func ReadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("bootenv: read config: %w", err)
	}
	defer f.Close()
	c, err := ParseConfig(f)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig parses the legacy fw_env.config format that fw_printenv reads: one line a copy,
//
//	device  offset  size  [sector-size  [sectors  [disable-lock]]]
//
// with blank lines and lines starting with '#' skipped. As in libubootenv, the offset is a C
// integer (0x for hex, a leading 0 for octal, else decimal) while the sizes and the sector count
// are hexadecimal with or without 0x. Unlike libubootenv, which skips a line it cannot read, a
// line that does not parse is an error, and so is a third copy.
func ParseConfig(r io.Reader) (Config, error) {
	var c Config
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		loc, err := parseLocation(strings.Fields(line))
		if err != nil {
			return Config{}, fmt.Errorf("%w: line %d: %w", ErrConfig, n, err)
		}
		if len(c.Copies) == 2 {
			return Config{}, fmt.Errorf("%w: line %d: a third copy (at most two)", ErrConfig, n)
		}
		c.Copies = append(c.Copies, loc)
	}
	if err := sc.Err(); err != nil {
		return Config{}, fmt.Errorf("bootenv: read config: %w", err)
	}
	if err := c.check(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func parseLocation(f []string) (Location, error) {
	if len(f) < 3 || len(f) > 6 {
		return Location{}, fmt.Errorf("%d fields, want device, offset, size and up to three more", len(f))
	}
	var (
		loc Location
		err error
	)
	loc.Path = f[0]
	if loc.Offset, err = strconv.ParseInt(f[1], 0, 64); err != nil {
		return Location{}, fmt.Errorf("offset %q: %w", f[1], err)
	}
	size, err := parseHex(f[2])
	if err != nil || size > maxSize {
		return Location{}, fmt.Errorf("size %q: not a hexadecimal size up to %#x", f[2], maxSize)
	}
	loc.Size = int(size)
	if len(f) > 3 {
		if loc.SectorSize, err = parseHex(f[3]); err != nil {
			return Location{}, fmt.Errorf("sector size %q: %w", f[3], err)
		}
	}
	if len(f) > 4 {
		if loc.Sectors, err = parseHex(f[4]); err != nil {
			return Location{}, fmt.Errorf("sectors %q: %w", f[4], err)
		}
	}
	if len(f) > 5 {
		if _, err := strconv.ParseUint(f[5], 10, 1); err != nil {
			return Location{}, fmt.Errorf("disable-lock %q: want 0 or 1", f[5])
		}
	}
	return loc, nil
}

func parseHex(s string) (int64, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	v, err := strconv.ParseUint(t, 16, 63)
	return int64(v), err
}

func (c Config) check() error {
	if len(c.Copies) != 1 && len(c.Copies) != 2 {
		return fmt.Errorf("%w: %d copies, want one or two", ErrConfig, len(c.Copies))
	}
	min := headerSize(c.Redundant()) + 1
	for i, l := range c.Copies {
		if l.Path == "" {
			return fmt.Errorf("%w: copy %d has no device", ErrConfig, i)
		}
		if l.Size < min || l.Size > maxSize {
			return fmt.Errorf("%w: copy %d: size %#x outside %#x..%#x", ErrConfig, i, l.Size, min, maxSize)
		}
		if l.Size != c.Copies[0].Size {
			return fmt.Errorf("%w: copies of sizes %#x and %#x", ErrConfig, c.Copies[0].Size, l.Size)
		}
	}
	return nil
}
