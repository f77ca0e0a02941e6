package main

import (
	"errors"
	"io"
	"testing"
)

// The exit status of registry lookup: 2 for a command line it cannot use, 1 for a registry
// it cannot read, 0 whatever the numbers are (the script test shows those).
func TestRegistryLookupExitStatus(t *testing.T) {
	for _, tt := range []struct {
		args  []string
		usage bool
	}{
		{[]string{"registry", "lookup"}, true},
		{[]string{"registry", "lookup", "--registry", "x.reg"}, true},
		{[]string{"registry", "lookup", "--bogus", "--registry", "x.reg", "5125550100"}, true},
		{[]string{"registry", "lookup", "--registry", "x.reg", "--area-code", "111", "5125550100"}, true},
		{[]string{"registry", "lookup", "--registry", t.TempDir() + "/missing.reg", "5125550100"}, false},
		{[]string{"registry", "build", "--csv", "x.csv", "--version", "1"}, true},
		{[]string{"registry", "build", "--csv", "x.csv", "--version", "1", "--out", "x.reg", "--removed", "r.csv"}, true},
		{[]string{"registry"}, true},
	} {
		err := run(tt.args, nil, io.Discard)
		if err == nil || errors.Is(err, errUsage) != tt.usage {
			t.Errorf("%q: %v, usage error %v", tt.args, err, tt.usage)
		}
	}
}
