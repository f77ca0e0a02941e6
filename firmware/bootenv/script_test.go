package bootenv

// dist/boot.cmd, the same logic for real boards, checked three ways: it names the variables
// Decide uses, mkimage accepts it, and run by a POSIX shell with U-Boot's commands modelled it
// decides as Decide does.

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var bootScript = filepath.Join("..", "..", "dist", "boot.cmd")

func readScript(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(bootScript)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// stateVars are the variables the boot logic reads and writes.
var stateVars = []string{varBootSlot, varGoodSlot, varTrial, varCount, varLimit, varFailed}

// Every state variable is set by the script and all but failed_slot (for the agent) are read,
// and the script sets nothing else but the board settings its header documents.
func TestBootScriptNames(t *testing.T) {
	var code strings.Builder
	for line := range strings.Lines(readScript(t)) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			code.WriteString(line)
		}
	}
	script := code.String()
	set := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)\b(?:setenv|setexpr)\s+(\w+)`).FindAllStringSubmatch(script, -1) {
		set[m[1]] = true
	}
	read := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\{(\w+)\}`).FindAllStringSubmatch(script, -1) {
		read[m[1]] = true
	}
	for _, v := range stateVars {
		if !set[v] || !read[v] && v != varFailed {
			t.Errorf("%s: set by the script %v, read %v", v, set[v], read[v])
		}
		if !strings.Contains(docText(t), v) {
			t.Errorf("%s is not in the package doc", v)
		}
	}
	board := []string{"slot_a_part", "slot_b_part", "root_prefix", "kernel_file", "initrd_file", "console_args", "state_load", "state_save", "slot_part", "initrd_arg", "bootargs"}
	for v := range set {
		if !slices.Contains(stateVars, v) && !slices.Contains(board, v) {
			t.Errorf("the script sets %s, neither state nor a board setting", v)
		}
	}
	header := readScript(t)
	for _, v := range board[:8] {
		if !strings.Contains(header, "#   "+v) && !strings.Contains(header, ", "+v) {
			t.Errorf("board setting %s is not documented in the script's header", v)
		}
	}
}

func docText(t *testing.T) string {
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBootScriptMkimage(t *testing.T) {
	mkimage := tool(t, "mkimage", "u-boot-tools")
	out := filepath.Join(t.TempDir(), "boot.scr")
	b, err := exec.Command(mkimage, "-A", "arm64", "-O", "linux", "-T", "script", "-C", "none", "-n", "wallphone", "-d", bootScript, out).CombinedOutput()
	if err != nil {
		t.Fatalf("mkimage: %v: %s", err, b)
	}
	if b, err = exec.Command(mkimage, "-l", out).CombinedOutput(); err != nil || !strings.Contains(string(b), "Script") {
		t.Errorf("mkimage -l: %v: %s", err, b)
	}
}

// ubootModel stands in for U-Boot's commands under a POSIX shell, whose if, test, &&, ${} and
// quoting behave as hush's do for what the script uses. setexpr and itest read numbers as
// simple_strtoul does (base 16); saveenv prints the state; booti prints what would boot.
const ubootModel = `
hex() { h=${1#0[xX]}; h=${h%%[!0-9a-fA-F]*}; echo $((0x${h:-0})); }
setenv() { n=$1; shift; eval "$n=\"\$*\""; }
setexpr() { [ "$3" = + ] || exit 3; eval "$1=$(printf '%x' $(( $(hex "$2") + $(hex "$4") )))"; }
itest() { [ "$2" = -gt ] || exit 3; [ "$(hex "$1")" -gt "$(hex "$3")" ]; }
saveenv() { for v in STATE; do eval "printf 'saved %s=%s\n' $v \"\${$v-(unset)}\""; done; }
ext4load() { printf 'load %s %s\n' "$2" "$4"; }
booti() { printf 'boot %s %s\n' "$boot_slot" "$bootargs"; exit 0; }
reset() { echo reset; exit 0; }
devtype=virtio devnum=0 kernel_addr_r=0x40400000 fdtcontroladdr=0x7e000000
`

// The script, run in the model from each of Decide's table cases and more, boots the slot
// Decide picks and saves what Decide saves.
func TestBootScriptAgreesWithDecide(t *testing.T) {
	sh := tool(t, "sh", "dash")
	script := readScript(t)
	model := strings.ReplaceAll(ubootModel, "STATE", strings.Join(stateVars, " "))
	cases := []map[string]string{nil}
	for _, slot := range []string{"a", "b", "c"} {
		for _, good := range []string{"a", "b", "x"} {
			cases = append(cases, map[string]string{"boot_slot": slot, "good_slot": good, "upgrade_available": "0", "bootcount": "5"})
			for _, count := range []string{"", "0", "2", "3", "9", "zz"} {
				for _, limit := range []string{"", "3", "0", "0x10"} {
					cases = append(cases, map[string]string{
						"boot_slot": slot, "good_slot": good, "upgrade_available": "1", "bootcount": count, "bootlimit": limit,
					})
				}
			}
		}
	}
	// One shell runs every case, each in a subshell that starts from the model alone.
	var prog strings.Builder
	prog.WriteString(model)
	for i, env := range cases {
		fmt.Fprintf(&prog, "echo 'case %d'\n(\n", i)
		for k, v := range env {
			if v != "" { // empty stands for unset, as U-Boot's setenv with no value unsets
				fmt.Fprintf(&prog, "%s='%s'\n", k, v)
			}
		}
		fmt.Fprintf(&prog, "%s\n)\n", script)
	}
	cmd := exec.Command(sh)
	cmd.Stdin = strings.NewReader(prog.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sh: %v: %.2000s", err, out)
	}
	results := strings.Split(string(out), "case ")[1:]
	if len(results) != len(cases) {
		t.Fatalf("%d results for %d cases: %.2000s", len(results), len(cases), out)
	}
	for i, env := range cases {
		maps.DeleteFunc(env, func(_, v string) bool { return v == "" })
		out := results[i]
		d := Decide(getter(env))
		want := maps.Clone(env)
		for _, c := range d.Save {
			want[c.Name] = c.Value
		}
		var gotBoot string
		saved := map[string]string{}
		for line := range strings.Lines(out) {
			line = strings.TrimSpace(line)
			if s, ok := strings.CutPrefix(line, "saved "); ok {
				k, v, _ := strings.Cut(s, "=")
				if v != "(unset)" {
					saved[k] = v
				}
			}
			if s, ok := strings.CutPrefix(line, "boot "); ok {
				gotBoot = s
			}
		}
		slot, args, _ := strings.Cut(gotBoot, " ")
		if slot != d.Slot || !strings.Contains(args, "wallphone.slot="+d.Slot) {
			t.Errorf("%v: the script boots %q, Decide %q", env, gotBoot, d.Slot)
		}
		if len(d.Save) == 0 && len(saved) > 0 || len(d.Save) > 0 && !maps.Equal(saved, want) {
			t.Errorf("%v: the script saves %v, Decide %v", env, saved, d.Save)
		}
	}
}
