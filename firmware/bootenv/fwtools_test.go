package bootenv

// Compatibility with the reference implementation: Debian's libubootenv-tool (fw_printenv,
// fw_setenv) and u-boot-tools (mkenvimage) on the same files as this package.

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tool finds a reference tool or skips: they are Debian packages that make deps installs.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("no %s on PATH (Debian package %s; make deps installs it)", name, pkg)
	}
	return p
}

// fwConfig writes c as an fw_env.config file for the reference tools.
func fwConfig(t *testing.T, c Config) string {
	t.Helper()
	var b strings.Builder
	for _, l := range c.Copies {
		fmt.Fprintf(&b, "%s %#x %#x\n", l.Path, l.Offset, l.Size)
	}
	p := filepath.Join(t.TempDir(), "fw_env.config")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// Our own parser reads what we hand the tools.
	if got, err := ReadConfig(p); err != nil || len(got.Copies) != len(c.Copies) {
		t.Fatalf("ReadConfig of %q: %+v, %v", b.String(), got, err)
	}
	return p
}

func fwPrintenv(t *testing.T, cfg string) map[string]string {
	t.Helper()
	out, err := exec.Command(tool(t, "fw_printenv", "libubootenv-tool"), "-c", cfg).Output()
	if err != nil {
		t.Fatalf("fw_printenv: %v", err)
	}
	m := map[string]string{}
	for line := range strings.Lines(string(out)) {
		if name, value, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "="); ok {
			m[name] = value
		}
	}
	return m
}

// fwSetenv sets the variables with one fw_setenv run; an empty value unsets.
func fwSetenv(t *testing.T, cfg string, kv map[string]string) {
	t.Helper()
	var script strings.Builder
	for k, v := range kv {
		fmt.Fprintf(&script, "%s=%s\n", k, v)
	}
	cmd := exec.Command(tool(t, "fw_setenv", "libubootenv-tool"), "-c", cfg, "-s", "-")
	cmd.Stdin = strings.NewReader(script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fw_setenv: %v: %s", err, out)
	}
}

// sample is an environment like the one a phone holds, with values that test the format's
// corners: spaces, '=' in a value, hush syntax, a long value.
func sample(n int) map[string]string {
	return map[string]string{
		"boot_slot":         "b",
		"good_slot":         "a",
		"upgrade_available": "1",
		"bootcount":         fmt.Sprintf("%x", n),
		"bootlimit":         "3",
		"bootargs":          "console=ttyAMA0 root=/dev/vda2 quiet",
		"eq":                "a=b=c",
		"script":            "if test ${x} = 1; then echo y; fi",
		"long":              strings.Repeat("0123456789", 40),
	}
}

// Go writes, fw_printenv reads every variable, for one copy and for two; with two copies the
// newer one is printed whichever of the two it is.
func TestFwPrintenvReadsGo(t *testing.T) {
	tool(t, "fw_printenv", "libubootenv-tool")
	for _, copies := range []int{1, 2} {
		c := envFiles(t, copies, 0x2000)
		cfg := fwConfig(t, c)
		e, err := OpenOrDefault(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		for n := range 3 { // copy 0, copy 1, copy 0 again
			want := sample(n)
			for k, v := range want {
				e.Set(k, v)
			}
			if err := e.Save(); err != nil {
				t.Fatal(err)
			}
			if got := fwPrintenv(t, cfg); !maps.Equal(got, want) {
				t.Errorf("%d copies, save %d: fw_printenv read\n%v\nwant\n%v", copies, n, got, want)
			}
		}
	}
}

// fw_setenv writes (starting from mkenvimage's image and alternating between the copies), Go
// reads what it wrote, including an unset.
func TestGoReadsFwSetenv(t *testing.T) {
	tool(t, "fw_setenv", "libubootenv-tool")
	mkenvimage := tool(t, "mkenvimage", "u-boot-tools")
	for _, copies := range []int{1, 2} {
		c := envFiles(t, copies, 0x2000)
		cfg := fwConfig(t, c)
		in := filepath.Join(t.TempDir(), "env.txt")
		os.WriteFile(in, []byte("bootlimit=3\nstale=1\n"), 0o600)
		args := []string{"-s", "0x2000", "-o", c.Copies[0].Path, in}
		if copies == 2 {
			args = append([]string{"-r"}, args...)
		}
		if out, err := exec.Command(mkenvimage, args...).CombinedOutput(); err != nil {
			t.Fatalf("mkenvimage: %v: %s", err, out)
		}
		if copies == 2 {
			b, _ := os.ReadFile(c.Copies[0].Path)
			os.WriteFile(c.Copies[1].Path, b, 0o600)
		}
		if got := vars(mustOpen(t, c)); !maps.Equal(got, map[string]string{"bootlimit": "3", "stale": "1"}) {
			t.Errorf("%d copies: mkenvimage's image read as %v", copies, got)
		}
		for n := range 3 {
			want := sample(n)
			set := maps.Clone(want)
			set["stale"] = "" // unset
			fwSetenv(t, cfg, set)
			if got := vars(mustOpen(t, c)); !maps.Equal(got, want) {
				t.Errorf("%d copies, fw_setenv %d: Go read\n%v\nwant\n%v", copies, n, got, want)
			}
		}
	}
}

// Both implementations pick the same copy across the flag's wrap from 255 to 0, whoever wrote.
func TestFlagWrapAgrees(t *testing.T) {
	tool(t, "fw_printenv", "libubootenv-tool")
	c := envFiles(t, 2, 0x100)
	cfg := fwConfig(t, c)
	e, _ := OpenOrDefault(c, nil)
	for n := range 262 {
		e.Set("n", fmt.Sprint(n))
		if err := e.Save(); err != nil {
			t.Fatal(err)
		}
		if n < 250 {
			continue
		}
		flag := rawCopy(t, c, n%2)[4]
		if got := fwPrintenv(t, cfg)["n"]; got != fmt.Sprint(n) {
			t.Errorf("Go save %d (flag %d): fw_printenv read n=%s", n, flag, got)
		}
		if got, _ := mustOpen(t, c).Get("n"); got != fmt.Sprint(n) {
			t.Errorf("Go save %d (flag %d): Go read n=%s", n, flag, got)
		}
	}
	// The flag is outside the CRC, so it can be moved near the wrap for fw_setenv to cross it.
	for i, flag := range []byte{252, 253} {
		img := rawCopy(t, c, i)
		img[4] = flag
		os.WriteFile(c.Copies[i].Path, img, 0o600)
	}
	for n := range 6 {
		fwSetenv(t, cfg, map[string]string{"n": fmt.Sprint(n)})
		if got, _ := mustOpen(t, c).Get("n"); got != fmt.Sprint(n) {
			t.Errorf("fw_setenv %d (flags %d, %d): Go read n=%s", n, rawCopy(t, c, 0)[4], rawCopy(t, c, 1)[4], got)
		}
	}
}

// A torn write of one copy (wrong bytes where the newer copy was written) makes both
// implementations use the other copy, whichever wrote it.
func TestTornCopyBothAgree(t *testing.T) {
	tool(t, "fw_printenv", "libubootenv-tool")
	for _, writer := range []string{"go", "fw_setenv"} {
		c := envFiles(t, 2, 0x2000)
		cfg := fwConfig(t, c)
		e, _ := OpenOrDefault(c, nil)
		e.Set("boot_slot", "a")
		if err := e.Save(); err != nil { // copy 0, flag 1
			t.Fatal(err)
		}
		if writer == "go" {
			e.Set("boot_slot", "b")
			if err := e.Save(); err != nil { // copy 1, flag 2
				t.Fatal(err)
			}
		} else {
			fwSetenv(t, cfg, map[string]string{"boot_slot": "b"})
		}
		if got := fwPrintenv(t, cfg)["boot_slot"]; got != "b" {
			t.Fatalf("%s: before the tear fw_printenv read boot_slot=%s", writer, got)
		}
		// Tear copy 1: its second half never reached the medium.
		whole := rawCopy(t, c, 1)
		img := rawCopy(t, c, 1)
		for i := len(img) / 2; i < len(img); i++ {
			img[i] = 0xff
		}
		os.WriteFile(c.Copies[1].Path, img, 0o600)
		if got := fwPrintenv(t, cfg)["boot_slot"]; got != "a" {
			t.Errorf("%s, copy 1 torn: fw_printenv read boot_slot=%s, want a", writer, got)
		}
		if got, _ := mustOpen(t, c).Get("boot_slot"); got != "a" {
			t.Errorf("%s, copy 1 torn: Go read boot_slot=%s, want a", writer, got)
		}
		// Copy 1 whole again; the writer writes copy 0 (now the newer), which is torn: both
		// go back to copy 1.
		os.WriteFile(c.Copies[1].Path, whole, 0o600)
		if writer == "go" {
			e = mustOpen(t, c)
			e.Set("boot_slot", "c")
			if err := e.Save(); err != nil {
				t.Fatal(err)
			}
		} else {
			fwSetenv(t, cfg, map[string]string{"boot_slot": "c"})
		}
		if got := fwPrintenv(t, cfg)["boot_slot"]; got != "c" {
			t.Fatalf("%s: second write: fw_printenv read boot_slot=%s, want c", writer, got)
		}
		img = rawCopy(t, c, 0)
		img[100] ^= 1
		os.WriteFile(c.Copies[0].Path, img, 0o600)
		if got := fwPrintenv(t, cfg)["boot_slot"]; got != "b" {
			t.Errorf("%s, copy 0 torn: fw_printenv read boot_slot=%s, want b", writer, got)
		}
		if got, _ := mustOpen(t, c).Get("boot_slot"); got != "b" {
			t.Errorf("%s, copy 0 torn: Go read boot_slot=%s, want b", writer, got)
		}
	}
}
