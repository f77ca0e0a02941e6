// Package deptest lets a test say what a package may and may not link, the way the go
// command sees it for a given platform: the phone binary must not carry the back office, and
// the call logic must not reach down to the database (promise 6 depends on the phone signing
// nothing, and a small binary is one that can be reviewed).
//
// Only tests import it.
package deptest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Target is what the go command is asked about: GOOS, GOARCH (and GOARM), cgo, build tags.
type Target struct {
	GOOS, GOARCH, GOARM string
	CGO                 bool
	Tags                []string
}

func (t Target) String() string {
	s := t.GOOS + "/" + t.GOARCH
	if t.GOARM != "" {
		s += "v" + t.GOARM
	}
	if t.CGO {
		s += "+cgo"
	}
	if len(t.Tags) > 0 {
		s += " -tags " + strings.Join(t.Tags, ",")
	}
	return s
}

// The phone's platforms: what make build-nocgo and build-cgo produce for the boards.
var (
	ARM64     = Target{GOOS: "linux", GOARCH: "arm64"}
	ARMv7     = Target{GOOS: "linux", GOARCH: "arm", GOARM: "7"}
	ARM64Cgo  = Target{GOOS: "linux", GOARCH: "arm64", CGO: true, Tags: []string{"portaudio"}}
	ARMv7Cgo  = Target{GOOS: "linux", GOARCH: "arm", GOARM: "7", CGO: true, Tags: []string{"portaudio"}}
	Platforms = []Target{ARM64, ARMv7, ARM64Cgo, ARMv7Cgo}
)

// Deps returns the import paths pkg links on target (itself included), as go list -deps
// reports them: the non-test build, standard library included.
func Deps(t testing.TB, target Target, pkg string) []string {
	t.Helper()
	args := []string{"list", "-deps", "-f", "{{.ImportPath}}"}
	if len(target.Tags) > 0 {
		args = append(args, "-tags", strings.Join(target.Tags, ","))
	}
	cmd := exec.Command(goCommand(), append(args, pkg)...)
	cgo := "0"
	if target.CGO {
		cgo = "1"
	}
	cmd.Env = append(os.Environ(), "GOOS="+target.GOOS, "GOARCH="+target.GOARCH, "CGO_ENABLED="+cgo)
	if target.GOARM != "" {
		cmd.Env = append(cmd.Env, "GOARM="+target.GOARM)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s (%s): %v\n%s", pkg, target, err, stderr.String())
	}
	return strings.Fields(string(out))
}

// Rule is one thing a package must not link: a path, or a prefix ending in "/", or a package
// whose last element ends in Suffix (for test helper packages: "test"), under the prefix if
// one is given too.
type Rule struct {
	Path   string   // exact import path, or a prefix if it ends in "/"
	Suffix string   // the last path element ends with this ("test" catches s3test, ptytest)
	Except []string // import paths the rule does not cover (selftest is the phone's own)
	Why    string   // said in the failure, so that whoever meets it knows what to do
}

func (r Rule) match(dep string) bool {
	if slices.Contains(r.Except, dep) {
		return false
	}
	if r.Path != "" {
		prefix := strings.HasSuffix(r.Path, "/")
		if !prefix && dep != r.Path || prefix && !strings.HasPrefix(dep, r.Path) {
			return false
		}
	}
	if r.Suffix != "" {
		last := dep[strings.LastIndex(dep, "/")+1:]
		return strings.HasSuffix(last, r.Suffix) && last != r.Suffix
	}
	return r.Path != ""
}

// Violations returns one line per dependency in deps that a rule forbids.
func Violations(deps []string, rules []Rule) []string {
	var out []string
	for _, d := range deps {
		for _, r := range rules {
			if r.match(d) {
				out = append(out, fmt.Sprintf("%s: %s", d, r.Why))
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// Forbid fails the test for every dependency of pkg on target that a rule forbids.
func Forbid(t testing.TB, target Target, pkg string, rules []Rule) {
	t.Helper()
	for _, v := range Violations(Deps(t, target, pkg), rules) {
		t.Errorf("%s on %s links %s", pkg, target, v)
	}
}

func goCommand() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}
