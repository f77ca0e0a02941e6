package release_test

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/wallphone/wallphone/firmware/release"
)

const sum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// custom is the image metadata of version v for hardware hw, with the fields given in
// extra replacing the defaults.
func custom(hw string, v uint64, extra ...string) string {
	f := map[string]string{"version": fmt.Sprint(v), "hardware": `"` + hw + `"`, "min_version": "0", "floor": "0",
		"index": fmt.Sprintf(`"firmware/%s_%d.bidx"`, hw, v), "index_sha256": `"` + sum + `"`, "rollout": "100"}
	for i := 0; i+1 < len(extra); i += 2 {
		f[extra[i]] = extra[i+1]
	}
	var parts []string
	for _, k := range []string{"version", "hardware", "min_version", "floor", "index", "index_sha256", "rollout"} {
		if v, ok := f[k]; ok && v != "-" {
			parts = append(parts, fmt.Sprintf("%q: %s", k, v))
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func TestNames(t *testing.T) {
	if got := release.ImageTarget("sim", 7); got != "firmware/sim_7.img" {
		t.Errorf("ImageTarget: %s", got)
	}
	if got := release.IndexTarget("rpi4", 12); got != "firmware/rpi4_12.bidx" {
		t.Errorf("IndexTarget: %s", got)
	}
	for _, good := range []struct {
		name string
		hw   string
		v    uint64
	}{
		{"firmware/sim_1.img", "sim", 1},
		{"firmware/rpi4_18446744073709551615.img", "rpi4", 18446744073709551615},
		{"firmware/a-b-0_30.img", "a-b-0", 30},
		{"firmware/" + strings.Repeat("x", 32) + "_2.img", strings.Repeat("x", 32), 2},
	} {
		hw, v, err := release.ParseImageTarget(good.name)
		if err != nil || hw != good.hw || v != good.v || release.ImageTarget(hw, v) != good.name {
			t.Errorf("%s: %q %d %v", good.name, hw, v, err)
		}
	}
	for _, bad := range []string{
		"", "firmware/sim_7.bidx", "firmware/sim_7", "sim_7.img", "firmware/sim/7.img", "firmware/sim_0.img",
		"firmware/sim_07.img", "firmware/sim_+7.img", "firmware/sim_7_8.img", "firmware/Sim_7.img", "firmware/-sim_7.img",
		"firmware/_7.img", "firmware/sim_.img", "firmware/sim_18446744073709551616.img", "firmware/" + strings.Repeat("x", 33) + "_2.img",
		"firmware/si m_7.img", "firmware/sim_7.img/", "/firmware/sim_7.img",
	} {
		if _, _, err := release.ParseImageTarget(bad); !errors.Is(err, release.ErrName) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	for _, hw := range []string{"", "-a", "A", "a_b", "a.b", strings.Repeat("a", 33), "é"} {
		if err := release.CheckHardware(hw); !errors.Is(err, release.ErrHardware) {
			t.Errorf("hardware %q: %v", hw, err)
		}
	}
}

func TestParse(t *testing.T) {
	got, err := release.Parse("firmware/sim_7.img", []byte(`{"version": 7, "hardware": "sim", "min_version": 3, "floor": 5, "index": "firmware/sim_7.bidx", "index_sha256": "`+sum+`", "rollout": 100}`))
	want := release.Release{Version: 7, Hardware: "sim", MinVersion: 3, Floor: 5, Index: "firmware/sim_7.bidx", IndexSHA256: sum, Rollout: 100}
	if err != nil || got != want {
		t.Fatalf("%+v %v", got, err)
	}
	b, err := want.Marshal()
	if err != nil || string(b) != `{"version":7,"hardware":"sim","min_version":3,"floor":5,"index":"firmware/sim_7.bidx","index_sha256":"`+sum+`","rollout":100}` {
		t.Fatalf("Marshal: %s %v", b, err)
	}
	bad := []struct{ why, name, custom string }{
		{"not JSON", "firmware/sim_7.img", "{"},
		{"not an object", "firmware/sim_7.img", "[7]"},
		{"null", "firmware/sim_7.img", "null"},
		{"trailing", "firmware/sim_7.img", custom("sim", 7) + "{}"},
		{"unknown field", "firmware/sim_7.img", strings.Replace(custom("sim", 7), "{", `{"extra": 1, `, 1)},
		{"repeated field", "firmware/sim_7.img", strings.Replace(custom("sim", 7), "{", `{"floor": 7, `, 1)},
		{"a field in another case", "firmware/sim_7.img", strings.Replace(custom("sim", 7, "floor", "5"), "}", `, "FLOOR": 0}`, 1)},
		{"nested value", "firmware/sim_7.img", custom("sim", 7, "floor", `{"floor": 1}`)},
		{"missing floor", "firmware/sim_7.img", custom("sim", 7, "floor", "-")},
		{"missing rollout", "firmware/sim_7.img", custom("sim", 7, "rollout", "-")},
		{"missing min_version", "firmware/sim_7.img", custom("sim", 7, "min_version", "-")},
		{"other version than the name", "firmware/sim_7.img", custom("sim", 8)},
		{"other hardware than the name", "firmware/sim_7.img", custom("rpi4", 7)},
		{"version 0", "firmware/sim_7.img", custom("sim", 7, "version", "0")},
		{"negative version", "firmware/sim_7.img", custom("sim", 7, "version", "-7")},
		{"fractional version", "firmware/sim_7.img", custom("sim", 7, "version", "7.0")},
		{"version as a string", "firmware/sim_7.img", custom("sim", 7, "version", `"7"`)},
		{"floor above version", "firmware/sim_7.img", custom("sim", 7, "floor", "8")},
		{"min_version above version", "firmware/sim_7.img", custom("sim", 7, "min_version", "8")},
		{"index of another version", "firmware/sim_7.img", custom("sim", 7, "index", `"firmware/sim_6.bidx"`)},
		{"short hash", "firmware/sim_7.img", custom("sim", 7, "index_sha256", `"`+sum[:62]+`"`)},
		{"upper-case hash", "firmware/sim_7.img", custom("sim", 7, "index_sha256", `"`+strings.ToUpper(sum)+`"`)},
		{"rollout 0", "firmware/sim_7.img", custom("sim", 7, "rollout", "0")},
		{"rollout 101", "firmware/sim_7.img", custom("sim", 7, "rollout", "101")},
		{"bad hardware", "firmware/sim_7.img", custom("Sim", 7)},
	}
	for _, c := range bad {
		if _, err := release.Parse(c.name, []byte(c.custom)); !errors.Is(err, release.ErrMetadata) {
			t.Errorf("%s: %s: %v", c.why, c.custom, err)
		}
	}
	if _, err := release.Parse("firmware/sim_7.bidx", []byte(custom("sim", 7))); !errors.Is(err, release.ErrName) {
		t.Errorf("an index target: %v", err)
	}
	if _, err := (release.Release{Version: 7, Hardware: "sim", Floor: 8}).Marshal(); !errors.Is(err, release.ErrMetadata) {
		t.Errorf("Marshal of an invalid release: %v", err)
	}
}

// The rule as the package documents it, computed here by hand, and the share it gives.
func TestInRollout(t *testing.T) {
	bucket := func(id string, v uint64) uint64 {
		b := sha256.Sum256(append([]byte(id), binary.BigEndian.AppendUint64(nil, v)...))
		return binary.BigEndian.Uint64(b[:8]) % 100
	}
	for i := range 200 {
		id, v := fmt.Sprintf("phone-%d", i), uint64(i%5+1)
		b := bucket(id, v)
		if release.InRollout(id, v, int(b)) || !release.InRollout(id, v, int(b)+1) {
			t.Fatalf("%s version %d: bucket %d", id, v, b)
		}
	}
	for _, share := range []int{1, 10, 50, 100} {
		n := 0
		for i := range 10000 {
			if release.InRollout(fmt.Sprintf("phone-%d", i), 7, share) {
				n++
			}
		}
		if lo, hi := share*100-300, share*100+300; n < lo || n > hi {
			t.Errorf("rollout %d%%: %d of 10000 phones", share, n)
		}
	}
	if !release.InRollout("any", 1, 100) {
		t.Error("rollout 100 leaves a phone out")
	}
}

func TestPick(t *testing.T) {
	img := func(hw string, v uint64, extra ...string) release.Target {
		return release.Target{Name: release.ImageTarget(hw, v), Custom: []byte(custom(hw, v, extra...))}
	}
	// A device id in version 9's 30% and out of its 20%: found, as the rule says.
	id := ""
	for i := 0; id == ""; i++ {
		c := fmt.Sprintf("dev-%d", i)
		if release.InRollout(c, 9, 30) && !release.InRollout(c, 9, 20) {
			id = c
		}
	}
	sim := release.Phone{DeviceID: id, Hardware: "sim", Committed: 5}
	cases := []struct {
		name    string
		phone   release.Phone
		targets []release.Target
		want    uint64 // 0: none
		floor   uint64
		skipped map[string]error
	}{
		{name: "nothing published", phone: sim},
		{name: "newest wins", phone: sim, targets: []release.Target{img("sim", 6), img("sim", 8), img("sim", 7)}, want: 8,
			skipped: map[string]error{"firmware/sim_6.img": release.ErrSuperseded, "firmware/sim_7.img": release.ErrSuperseded}},
		{name: "hardware mismatch", phone: sim, targets: []release.Target{img("rpi4", 9), img("sim", 6)}, want: 6,
			skipped: map[string]error{"firmware/rpi4_9.img": release.ErrOtherHardware}},
		{name: "another board's floor does not count", phone: sim, targets: []release.Target{img("rpi4", 9, "floor", "9"), img("sim", 6)}, want: 6},
		{name: "the committed version and older", phone: sim, targets: []release.Target{img("sim", 4), img("sim", 5)},
			skipped: map[string]error{"firmware/sim_4.img": release.ErrNotNewer, "firmware/sim_5.img": release.ErrNotNewer}},
		{name: "below the phone's floor", phone: release.Phone{DeviceID: id, Hardware: "sim", Committed: 5, Floor: 7},
			targets: []release.Target{img("sim", 6)}, floor: 7, skipped: map[string]error{"firmware/sim_6.img": release.ErrBelowFloor}},
		{name: "below a signed floor, even out of that release's rollout", phone: sim,
			targets: []release.Target{img("sim", 6), img("sim", 9, "floor", "8", "rollout", "20")}, floor: 8,
			skipped: map[string]error{"firmware/sim_6.img": release.ErrBelowFloor, "firmware/sim_9.img": release.ErrNotInRollout}},
		{name: "at the floor", phone: sim, targets: []release.Target{img("sim", 8, "floor", "8")}, want: 8, floor: 8},
		{name: "below min_version", phone: sim, targets: []release.Target{img("sim", 9, "min_version", "6"), img("sim", 7, "min_version", "5")}, want: 7,
			skipped: map[string]error{"firmware/sim_9.img": release.ErrMinVersion}},
		{name: "failed versions skipped", phone: release.Phone{DeviceID: id, Hardware: "sim", Committed: 5, Failed: []uint64{8, 7}},
			targets: []release.Target{img("sim", 6), img("sim", 7), img("sim", 8)}, want: 6,
			skipped: map[string]error{"firmware/sim_7.img": release.ErrFailed, "firmware/sim_8.img": release.ErrFailed}},
		{name: "a newer release after a failed one", phone: release.Phone{DeviceID: id, Hardware: "sim", Committed: 5, Failed: []uint64{8}},
			targets: []release.Target{img("sim", 8), img("sim", 9)}, want: 9},
		{name: "in the rollout share", phone: sim, targets: []release.Target{img("sim", 9, "rollout", "30")}, want: 9},
		{name: "out of the rollout share", phone: sim, targets: []release.Target{img("sim", 9, "rollout", "20"), img("sim", 6)}, want: 6,
			skipped: map[string]error{"firmware/sim_9.img": release.ErrNotInRollout}},
		{name: "bad metadata and names skipped", phone: sim,
			targets: []release.Target{{Name: "firmware/sim_9.img", Custom: []byte(custom("sim", 9, "floor", "10"))},
				{Name: "firmware/sim_8.bidx"}, img("sim", 6)}, want: 6,
			skipped: map[string]error{"firmware/sim_9.img": release.ErrMetadata, "firmware/sim_8.bidx": release.ErrName}},
		{name: "first install over nothing", phone: release.Phone{DeviceID: id, Hardware: "sim"},
			targets: []release.Target{img("sim", 1), img("sim", 2, "min_version", "1")}, want: 1,
			skipped: map[string]error{"firmware/sim_2.img": release.ErrMinVersion}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := release.Pick(c.phone, c.targets)
			if got.Release.Version != c.want || (c.want == 0) != (got.Target == "") {
				t.Fatalf("picked %q version %d, want %d; skipped %v", got.Target, got.Release.Version, c.want, got.Skipped)
			}
			if c.want != 0 && got.Target != release.ImageTarget("sim", c.want) {
				t.Fatalf("target %q", got.Target)
			}
			if want := max(c.floor, c.phone.Floor); got.Floor != want {
				t.Errorf("floor %d, want %d", got.Floor, want)
			}
			for _, s := range got.Skipped {
				if want, ok := c.skipped[s.Target]; ok && !errors.Is(s.Err, want) {
					t.Errorf("%s skipped: %v, want %v", s.Target, s.Err, want)
				}
			}
			for name := range c.skipped {
				found := false
				for _, s := range got.Skipped {
					found = found || s.Target == name
				}
				if !found {
					t.Errorf("%s not among the skipped %v", name, got.Skipped)
				}
			}
		})
	}
}
