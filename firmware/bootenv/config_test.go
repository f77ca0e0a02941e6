package bootenv

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	good := []struct {
		in   string
		want Config
	}{
		{"/dev/mtd1 0x0 0x40000\n", Config{[]Location{{Path: "/dev/mtd1", Size: 0x40000}}}},
		{"# comment\n\n  # indented\n/env.bin\t0\t40000 10000 2 1\n",
			Config{[]Location{{Path: "/env.bin", Size: 0x40000, SectorSize: 0x10000, Sectors: 2}}}},
		{"/dev/mmcblk0 0x3f0000 0x2000\n/dev/mmcblk0 -0x2000 0x2000\n",
			Config{[]Location{{Path: "/dev/mmcblk0", Offset: 0x3f0000, Size: 0x2000}, {Path: "/dev/mmcblk0", Offset: -0x2000, Size: 0x2000}}}},
		{"/e 4096 0x1000", Config{[]Location{{Path: "/e", Offset: 4096, Size: 0x1000}}}}, // decimal offset, as %lli
		{"/e 010 0x1000", Config{[]Location{{Path: "/e", Offset: 8, Size: 0x1000}}}},     // octal offset, as %lli
	}
	for _, tc := range good {
		got, err := ParseConfig(strings.NewReader(tc.in))
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
	bad := map[string]string{
		"":                                "0 copies",
		"# only a comment\n":              "0 copies",
		"/e 0x0\n":                        "line 1: 2 fields",
		"/e zero 0x1000\n":                `offset "zero"`,
		"/e 0 0x1000 0 0 0 extra\n":       "7 fields",
		"/e 0 size\n":                     `size "size"`,
		"/e 0 0\n":                        "size 0x0 outside",
		"/e 0 0x1000\n/f 0 0x2000\n":      "copies of sizes 0x1000 and 0x2000",
		"/e 0 1000\n/f 0 1000\n/g 0 1000": "line 3: a third copy",
		"/e 0 0x1000 0 0 2\n":             `disable-lock "2"`,
		"/e 0 0x40000000\n":               "size",
	}
	for in, want := range bad {
		_, err := ParseConfig(strings.NewReader(in))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want ErrConfig saying %q", in, err, want)
		}
	}
}
