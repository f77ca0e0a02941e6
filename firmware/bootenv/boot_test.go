package bootenv

import (
	"errors"
	"maps"
	"reflect"
	"testing"
)

func getter(m map[string]string) func(string) (string, bool) {
	return func(n string) (string, bool) { v, ok := m[n]; return v, ok }
}

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want Decision
	}{
		{"blank environment: slot a, nothing written", nil, Decision{Slot: "a"}},
		{"committed b", map[string]string{"boot_slot": "b", "good_slot": "b", "upgrade_available": "0", "bootcount": "0"},
			Decision{Slot: "b"}},
		{"garbage slot names: the good slot, else a", map[string]string{"boot_slot": "c", "good_slot": "b"}, Decision{Slot: "b"}},
		{"garbage everywhere", map[string]string{"boot_slot": "", "good_slot": "A"}, Decision{Slot: "a"}},
		{"upgrade_available other than 1 is off trial", map[string]string{"boot_slot": "b", "upgrade_available": "yes", "bootcount": "9"},
			Decision{Slot: "b"}},
		{"first boot of a new slot",
			map[string]string{"boot_slot": "b", "good_slot": "a", "upgrade_available": "1", "bootcount": "0", "bootlimit": "3"},
			Decision{Slot: "b", Trial: true, Count: 1, Save: []Change{
				{"good_slot", "a"}, {"boot_slot", "b"}, {"bootlimit", "3"}, {"bootcount", "1"}}}},
		{"second try",
			map[string]string{"boot_slot": "b", "good_slot": "a", "upgrade_available": "1", "bootcount": "1", "bootlimit": "3"},
			Decision{Slot: "b", Trial: true, Count: 2, Save: []Change{
				{"good_slot", "a"}, {"boot_slot", "b"}, {"bootlimit", "3"}, {"bootcount", "2"}}}},
		{"last try within the limit",
			map[string]string{"boot_slot": "b", "good_slot": "a", "upgrade_available": "1", "bootcount": "2", "bootlimit": "3"},
			Decision{Slot: "b", Trial: true, Count: 3, Save: []Change{
				{"good_slot", "a"}, {"boot_slot", "b"}, {"bootlimit", "3"}, {"bootcount", "3"}}}},
		{"over the limit: fallback",
			map[string]string{"boot_slot": "b", "good_slot": "a", "upgrade_available": "1", "bootcount": "3", "bootlimit": "3"},
			Decision{Slot: "a", Count: 4, FellBack: true, Failed: "b", Save: []Change{
				{"good_slot", "a"}, {"boot_slot", "b"}, {"bootlimit", "3"}, {"bootcount", "4"},
				{"failed_slot", "b"}, {"boot_slot", "a"}, {"upgrade_available", "0"}}}},
		{"unset count and limit take the script's defaults, and are saved",
			map[string]string{"boot_slot": "a", "good_slot": "b", "upgrade_available": "1"},
			Decision{Slot: "a", Trial: true, Count: 1, Save: []Change{
				{"good_slot", "b"}, {"boot_slot", "a"}, {"bootlimit", "3"}, {"bootcount", "1"}}}},
		{"limit 0: the trial falls back at once",
			map[string]string{"boot_slot": "b", "good_slot": "a", "upgrade_available": "1", "bootlimit": "0"},
			Decision{Slot: "a", Count: 1, FellBack: true, Failed: "b", Save: []Change{
				{"good_slot", "a"}, {"boot_slot", "b"}, {"bootlimit", "0"}, {"bootcount", "1"},
				{"failed_slot", "b"}, {"boot_slot", "a"}, {"upgrade_available", "0"}}}},
		{"counts are hexadecimal, as setexpr writes them: 9 then a",
			map[string]string{"boot_slot": "b", "good_slot": "a", "upgrade_available": "1", "bootcount": "9", "bootlimit": "0x10"},
			Decision{Slot: "b", Trial: true, Count: 10, Save: []Change{
				{"good_slot", "a"}, {"boot_slot", "b"}, {"bootlimit", "0x10"}, {"bootcount", "a"}}}},
		{"a count that is not a number reads as 0, as simple_strtoul does",
			map[string]string{"boot_slot": "b", "good_slot": "a", "upgrade_available": "1", "bootcount": "zz", "bootlimit": "1"},
			Decision{Slot: "b", Trial: true, Count: 1, Save: []Change{
				{"good_slot", "a"}, {"boot_slot", "b"}, {"bootlimit", "1"}, {"bootcount", "1"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(getter(tc.env)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestUbootHex(t *testing.T) {
	for s, want := range map[string]uint64{"": 0, "0": 0, "9": 9, "a": 10, "A": 10, "0x10": 16, "0X1f": 31, "12z4": 0x12, "x": 0, "0x": 0} {
		if got := ubootHex(s); got != want {
			t.Errorf("ubootHex(%q) = %d, want %d", s, got, want)
		}
	}
}

// The whole life of two updates on a file-backed environment, as the simulated phone lives it:
// one that fails every boot and falls back, one that commits.
func TestTrialLifecycle(t *testing.T) {
	c := envFiles(t, 2, 0x1000)
	var e *Env
	boot := func() Decision {
		t.Helper()
		var err error
		if e, err = OpenOrDefault(c, nil); err != nil { // every boot reads it afresh
			t.Fatal(err)
		}
		d, err := Boot(e)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := boot(); d.Slot != "a" || d.Trial {
		t.Fatalf("blank environment boots %+v", d)
	}
	if err := Commit(e, "a"); err != nil {
		t.Fatal(err)
	}

	// A bad version in b: tried bootlimit times, then a again, b named as failed.
	if err := MarkTrial(e, "b"); err != nil {
		t.Fatal(err)
	}
	for n := uint64(1); n <= defaultLimit; n++ {
		if d := boot(); d.Slot != "b" || !d.Trial || d.Count != n {
			t.Fatalf("trial boot %d: %+v", n, d)
		}
	}
	if d := boot(); d.Slot != "a" || !d.FellBack || d.Failed != "b" {
		t.Fatalf("boot past the limit: %+v", d)
	}
	if v, _ := e.Get("failed_slot"); v != "b" {
		t.Errorf("failed_slot = %q after the fallback", v)
	}
	both := func() string { return string(rawCopy(t, c, 0)) + string(rawCopy(t, c, 1)) }
	before := both()
	if d := boot(); d.Slot != "a" || d.Trial || d.FellBack {
		t.Fatalf("boot after the fallback: %+v", d)
	}
	if both() != before {
		t.Error("a boot off trial wrote the environment")
	}

	// A good version in b: one trial boot, then the commit; b boots from then on.
	if err := MarkTrial(e, "b"); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Get("failed_slot"); ok {
		t.Error("MarkTrial left failed_slot set")
	}
	if d := boot(); d.Slot != "b" || !d.Trial || d.Count != 1 {
		t.Fatalf("trial boot of the good version: %+v", d)
	}
	if err := Commit(e, "b"); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"boot_slot": "b", "good_slot": "b", "upgrade_available": "0", "bootcount": "0", "bootlimit": "3"}
	if got := vars(mustOpen(t, c)); !maps.Equal(got, want) {
		t.Errorf("after the commit: %v, want %v", got, want)
	}
	for range 5 {
		if d := boot(); d.Slot != "b" || d.Trial {
			t.Fatalf("boot after the commit: %+v", d)
		}
	}
	// Committing again, as the agent does at every start, writes nothing.
	before = both()
	if err := Commit(mustOpen(t, c), "b"); err != nil {
		t.Fatal(err)
	}
	if both() != before {
		t.Error("a repeated commit wrote the environment")
	}
}

func TestMarkTrialRefuses(t *testing.T) {
	c := envFiles(t, 1, 0x1000)
	e, _ := OpenOrDefault(c, map[string]string{"boot_slot": "b"})
	// No good_slot yet: the slot booting (b) is the good one, so b cannot go on trial.
	for _, slot := range []string{"b", "c", ""} {
		if err := MarkTrial(e, slot); !errors.Is(err, ErrSlot) {
			t.Errorf("MarkTrial(%q) = %v, want ErrSlot", slot, err)
		}
	}
	if err := MarkTrial(e, "a"); err != nil {
		t.Fatal(err)
	}
	if v, _ := e.Get("good_slot"); v != "b" {
		t.Errorf("good_slot = %q, want the slot that was booting, b", v)
	}
	if err := Commit(e, "x"); !errors.Is(err, ErrSlot) {
		t.Errorf("Commit(x) = %v, want ErrSlot", err)
	}
}
