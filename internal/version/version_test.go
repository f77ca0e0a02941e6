package version

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	setting := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, c := range []struct {
		main     string
		settings []debug.BuildSetting
		want     string
	}{
		{"v1.2.3", nil, "v1.2.3"},
		{"v0.0.0-20260102150405-abcdef123456+dirty", setting("vcs.revision", "abcdef1234567890", "vcs.modified", "true"), "v0.0.0-20260102150405-abcdef123456+dirty"},
		{"(devel)", setting("vcs.revision", "abcdef1234567890", "vcs.modified", "false"), "devel abcdef123456"},
		{"(devel)", setting("vcs.revision", "abcdef1234567890", "vcs.modified", "true"), "devel abcdef123456-dirty"},
		{"", nil, "unknown"},
		{"(devel)", setting("vcs.modified", "true"), "unknown"},
	} {
		bi := &debug.BuildInfo{Main: debug.Module{Version: c.main}, Settings: c.settings}
		if got := fromBuildInfo(bi); got != c.want {
			t.Errorf("%q %v: %q, want %q", c.main, c.settings, got, c.want)
		}
	}
}
