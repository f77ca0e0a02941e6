// Package version says which build of wallphone is running, from what the go command
// stamped into the binary: the module's version, or for a build from a checkout that is not
// at a release, the commit it was built from. Both commands and the console's hello report
// it, so that a phone and the tool that talks to it can be matched to a commit.
package version

import (
	"runtime/debug"
	"strings"
)

// stamp, when the linker sets it, is the version: a release build's firmware version, which
// the vendor publishes it as (make build VERSION=7:
// -ldflags "-X github.com/wallphone/wallphone/internal/version.stamp=7"). A variable only
// because -X sets nothing else; nothing assigns it at run time.
var stamp string

// String is the version of the running binary: the stamp the linker set, else a module version (v1.2.3, or a
// pseudo-version such as v0.0.0-20260102150405-abcdef123456, with +dirty when the
// checkout had uncommitted changes), else the VCS revision (with -dirty likewise), else
// "unknown" for a binary built without either (go build -buildvcs=false outside a module
// release, or a test binary).
func String() string {
	if stamp != "" {
		return stamp
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel " + strings.TrimSpace(rev)
}
