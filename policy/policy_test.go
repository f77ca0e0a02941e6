package policy

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/wallphone/wallphone/dialplan"
	"github.com/wallphone/wallphone/pin"
)

// verifier5678 is a verifier of PIN 5678 from the pin package's known answers.
const verifier5678 = "$argon2id$v=19$m=64,t=3,p=2$c2FsdC1mb3ItdHdvLWxhbmVz$Fa84L8gFBdgRV6DWLX8Wcw"

// base is a valid policy that the table below breaks one field at a time.
const base = `{
  "version": 7,
  "facility": "Test Facility",
  "dial_plan": {"country": "US", "area_code": "512", "outside_digit": "9"},
  "limits": {
    "max_pin_attempts": 3, "lockout": "15m", "call_limit": "15m", "privileged_call_limit": "60m",
    "entry_timeout": "10s", "inter_digit_timeout": "4s", "ring_timeout": "45s",
    "accept_timeout": "20s", "language_timeout": "5s"
  },
  "callers": [
    {"id": "1001", "pin_verifier": "` + verifier5678 + `", "language": "en"},
    {"id": "1002", "pin_verifier": "` + verifier5678 + `", "language": "es", "call_limit": "20m"},
    {"id": "0042", "pin_verifier": "` + verifier5678 + `",
     "allowed_numbers": ["(512) 555-0123", "+1 512 555 0124", "15125550123"]}
  ],
  "blocked_numbers": ["512.555.0166", "+1 (512) 555-0167"],
  "free_numbers": ["1-800-656-4673"],
  "recording": {
    "recipients": ["` + recipientA + `", "` + recipientB + `"],
    "segment": "5s", "spool_max_bytes": 268435456, "when_full": "refuse"
  },
  "stale": {"refuse_recorded_after": "72h"}
}`

// Two age X25519 recipients whose identities nobody kept.
const (
	recipientA = "age1uwdjl4mgf073yp3m3w2fw3p7cqpk9klcnd527hvyvgv5s0zcdv2sxggeq6"
	recipientB = "age19phwxrk7zsc2tulwgw67xkz8l4epjghzjpj34j6r3sjh5qqe4qnqq2c6g3"
)

var testRecipients = []string{recipientA, recipientB}

// edit returns base with fn applied to its decoded form.
func edit(t testing.TB, fn func(m map[string]any)) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(base), &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func obj(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }

func caller(m map[string]any, i int) map[string]any {
	return m["callers"].([]any)[i].(map[string]any)
}

type badCase struct {
	name string
	doc  string
	path string
	err  error
}

// badPolicies are broken policies, each with the field its error must name.
func badPolicies(t testing.TB) []badCase {
	replace := func(old, new string) string {
		if !strings.Contains(base, old) {
			t.Fatalf("base has no %q", old)
		}
		return strings.Replace(base, old, new, 1)
	}
	return []badCase{
		{"empty", "", "", ErrSyntax},
		{"not json", "{", "", ErrSyntax},
		{"truncated", base[:strings.Index(base, `"callers"`)], "", ErrSyntax},
		{"truncated in a caller", base[:strings.Index(base, `"language": "es"`)], "callers[1]", ErrSyntax},
		{"list", "[]", "", ErrType},
		{"null document", "null", "", ErrType},
		{"trailing object", base + "{}", "", ErrSyntax},
		{"trailing garbage", base + "x", "", ErrSyntax},
		{"invalid utf-8", replace("Test Facility", "Test \xff Facility"), "", ErrSyntax},
		{"syntax error inside", replace(`"lockout": "15m",`, `"lockout": "15m",,`), "limits", ErrSyntax},

		{"unknown field", replace(`"version": 7,`, `"version": 7, "expires": "2030-01-01",`), "expires", ErrUnknownField},
		{"unknown limit", replace(`"lockout": "15m"`, `"lockout_time": "15m"`), "limits.lockout_time", ErrUnknownField},
		{"unknown caller field", replace(`"language": "es",`, `"language": "es", "pin": "5678",`), "callers[1].pin", ErrUnknownField},
		{"unknown plan field", replace(`"outside_digit": "9"`, `"outside_digit": "9", "prefix": "1"`), "dial_plan.prefix", ErrUnknownField},
		{"key in capitals", replace(`"version": 7`, `"Version": 7`), "Version", ErrUnknownField},
		{"key in another case", replace(`"facility"`, `"faCility"`), "faCility", ErrUnknownField},
		{"duplicate key", replace(`"version": 7,`, `"version": 7, "version": 8,`), "version", ErrDuplicateKey},
		{"duplicate caller key", replace(`"language": "en"}`, `"language": "en", "language": "es"}`), "callers[0].language", ErrDuplicateKey},

		{"version missing", edit(t, func(m map[string]any) { delete(m, "version") }), "version", ErrMissing},
		{"version null", edit(t, func(m map[string]any) { m["version"] = nil }), "version", ErrType},
		{"version string", edit(t, func(m map[string]any) { m["version"] = "7" }), "version", ErrType},
		{"version fraction", edit(t, func(m map[string]any) { m["version"] = 1.5 }), "version", ErrType},
		{"version huge", replace(`"version": 7`, `"version": 99999999999999999999`), "version", ErrType},
		{"version zero", edit(t, func(m map[string]any) { m["version"] = 0 }), "version", ErrValue},
		{"version negative", edit(t, func(m map[string]any) { m["version"] = -1 }), "version", ErrValue},
		{"facility missing", edit(t, func(m map[string]any) { delete(m, "facility") }), "facility", ErrMissing},
		{"facility blank", edit(t, func(m map[string]any) { m["facility"] = "  " }), "facility", ErrValue},
		{"facility number", edit(t, func(m map[string]any) { m["facility"] = 3 }), "facility", ErrType},

		{"dial plan missing", edit(t, func(m map[string]any) { delete(m, "dial_plan") }), "dial_plan", ErrMissing},
		{"dial plan list", edit(t, func(m map[string]any) { m["dial_plan"] = []any{} }), "dial_plan", ErrType},
		{"country missing", edit(t, func(m map[string]any) { delete(obj(m, "dial_plan"), "country") }), "dial_plan.country", ErrMissing},
		{"country not nanp", edit(t, func(m map[string]any) { obj(m, "dial_plan")["country"] = "GB" }), "dial_plan", dialplan.ErrPlan},
		{"area code bad", edit(t, func(m map[string]any) { obj(m, "dial_plan")["area_code"] = "911" }), "dial_plan", dialplan.ErrPlan},
		{"outside digit bad", edit(t, func(m map[string]any) { obj(m, "dial_plan")["outside_digit"] = "1" }), "dial_plan", dialplan.ErrPlan},

		{"limits missing", edit(t, func(m map[string]any) { delete(m, "limits") }), "limits", ErrMissing},
		{"max attempts missing", edit(t, func(m map[string]any) { delete(obj(m, "limits"), "max_pin_attempts") }), "limits.max_pin_attempts", ErrMissing},
		{"max attempts zero", edit(t, func(m map[string]any) { obj(m, "limits")["max_pin_attempts"] = 0 }), "limits.max_pin_attempts", ErrValue},
		{"max attempts huge", edit(t, func(m map[string]any) { obj(m, "limits")["max_pin_attempts"] = float64(1 << 40) }), "limits.max_pin_attempts", ErrValue},
		{"max attempts string", edit(t, func(m map[string]any) { obj(m, "limits")["max_pin_attempts"] = "3" }), "limits.max_pin_attempts", ErrType},
		{"ring timeout missing", edit(t, func(m map[string]any) { delete(obj(m, "limits"), "ring_timeout") }), "limits.ring_timeout", ErrMissing},
		{"lockout without unit", edit(t, func(m map[string]any) { obj(m, "limits")["lockout"] = "15" }), "limits.lockout", ErrValue},
		{"lockout number", edit(t, func(m map[string]any) { obj(m, "limits")["lockout"] = 900 }), "limits.lockout", ErrType},
		{"call limit negative", edit(t, func(m map[string]any) { obj(m, "limits")["call_limit"] = "-15m" }), "limits.call_limit", ErrValue},
		{"accept timeout zero", edit(t, func(m map[string]any) { obj(m, "limits")["accept_timeout"] = "0s" }), "limits.accept_timeout", ErrValue},
		{"language timeout words", edit(t, func(m map[string]any) { obj(m, "limits")["language_timeout"] = "five seconds" }), "limits.language_timeout", ErrValue},
		{"privileged limit overflow", edit(t, func(m map[string]any) { obj(m, "limits")["privileged_call_limit"] = "9999999999h" }), "limits.privileged_call_limit", ErrValue},
		{"recording missing", edit(t, func(m map[string]any) { delete(m, "recording") }), "recording", ErrMissing},
		{"recipients missing", edit(t, func(m map[string]any) { delete(obj(m, "recording"), "recipients") }), "recording.recipients", ErrMissing},
		{"one recipient", edit(t, func(m map[string]any) { obj(m, "recording")["recipients"] = []any{recipientA} }), "recording.recipients", ErrValue},
		{"recipient twice", edit(t, func(m map[string]any) { obj(m, "recording")["recipients"] = []any{recipientA, recipientA} }), "recording.recipients[1]", ErrValue},
		{"recipient not age", edit(t, func(m map[string]any) { obj(m, "recording")["recipients"] = []any{recipientA, "ssh-ed25519 AAAA"} }), "recording.recipients[1]", ErrValue},
		{"recipient bad checksum", edit(t, func(m map[string]any) {
			obj(m, "recording")["recipients"] = []any{recipientA, recipientB[:len(recipientB)-1] + "q"}
		}), "recording.recipients[1]", ErrValue},
		{"retention not a duration", edit(t, func(m map[string]any) { m["retention"] = map[string]any{"call_records": "a month"} }), "retention.call_records", ErrValue},
		{"retention too long", edit(t, func(m map[string]any) { m["retention"] = map[string]any{"call_records": "9000h"} }), "retention.call_records", ErrValue},
		{"retention empty", edit(t, func(m map[string]any) { m["retention"] = map[string]any{} }), "retention.call_records", ErrMissing},
		{"firmware empty", edit(t, func(m map[string]any) { m["firmware"] = map[string]any{} }), "firmware.reboot_window", ErrMissing},
		{"window without zone", edit(t, func(m map[string]any) { m["firmware"] = map[string]any{"reboot_window": "02:00-05:00"} }), "firmware.time_zone", ErrMissing},
		{"window one time", edit(t, func(m map[string]any) { m["firmware"] = window("02:00", "UTC") }), "firmware.reboot_window", ErrValue},
		{"window hour 24", edit(t, func(m map[string]any) { m["firmware"] = window("22:00-24:00", "UTC") }), "firmware.reboot_window", ErrValue},
		{"window one digit", edit(t, func(m map[string]any) { m["firmware"] = window("2:00-05:00", "UTC") }), "firmware.reboot_window", ErrValue},
		{"window empty", edit(t, func(m map[string]any) { m["firmware"] = window("03:00-03:00", "UTC") }), "firmware.reboot_window", ErrValue},
		{"window words", edit(t, func(m map[string]any) { m["firmware"] = window("night", "UTC") }), "firmware.reboot_window", ErrValue},
		{"zone unknown", edit(t, func(m map[string]any) { m["firmware"] = window("02:00-05:00", "America/Gotham") }), "firmware.time_zone", ErrValue},
		{"zone Local", edit(t, func(m map[string]any) { m["firmware"] = window("02:00-05:00", "Local") }), "firmware.time_zone", ErrValue},
		{"zone empty", edit(t, func(m map[string]any) { m["firmware"] = window("02:00-05:00", "") }), "firmware.time_zone", ErrValue},
		{"stale rule missing", edit(t, func(m map[string]any) { delete(m, "stale") }), "stale", ErrMissing},
		{"stale rule empty", edit(t, func(m map[string]any) { m["stale"] = map[string]any{} }), "stale.refuse_recorded_after", ErrMissing},
		{"stale rule not a duration", edit(t, func(m map[string]any) { m["stale"] = map[string]any{"refuse_recorded_after": "a week"} }), "stale.refuse_recorded_after", ErrValue},
		{"stale rule zero", edit(t, func(m map[string]any) { m["stale"] = map[string]any{"refuse_recorded_after": "0s"} }), "stale.refuse_recorded_after", ErrValue},
		{"segment missing", edit(t, func(m map[string]any) { delete(obj(m, "recording"), "segment") }), "recording.segment", ErrMissing},
		{"segment too long", edit(t, func(m map[string]any) { obj(m, "recording")["segment"] = "2m" }), "recording.segment", ErrValue},
		{"segment too short", edit(t, func(m map[string]any) { obj(m, "recording")["segment"] = "500ms" }), "recording.segment", ErrValue},
		{"segment not whole frames", edit(t, func(m map[string]any) { obj(m, "recording")["segment"] = "5.01s" }), "recording.segment", ErrValue},
		{"spool bound missing", edit(t, func(m map[string]any) { delete(obj(m, "recording"), "spool_max_bytes") }), "recording.spool_max_bytes", ErrMissing},
		{"spool bound tiny", edit(t, func(m map[string]any) { obj(m, "recording")["spool_max_bytes"] = 1000 }), "recording.spool_max_bytes", ErrValue},
		{"when full unknown", edit(t, func(m map[string]any) { obj(m, "recording")["when_full"] = "overwrite_oldest" }), "recording.when_full", ErrValue},
		{"when full missing", edit(t, func(m map[string]any) { delete(obj(m, "recording"), "when_full") }), "recording.when_full", ErrMissing},

		{"callers missing", edit(t, func(m map[string]any) { delete(m, "callers") }), "callers", ErrMissing},
		{"callers object", edit(t, func(m map[string]any) { m["callers"] = map[string]any{} }), "callers", ErrType},
		{"caller string", edit(t, func(m map[string]any) { m["callers"].([]any)[1] = "1002" }), "callers[1]", ErrType},
		{"caller null", edit(t, func(m map[string]any) { m["callers"].([]any)[2] = nil }), "callers[2]", ErrType},
		{"id missing", edit(t, func(m map[string]any) { delete(caller(m, 1), "id") }), "callers[1].id", ErrMissing},
		{"id number", edit(t, func(m map[string]any) { caller(m, 0)["id"] = 1001 }), "callers[0].id", ErrType},
		{"id empty", edit(t, func(m map[string]any) { caller(m, 0)["id"] = "" }), "callers[0].id", ErrValue},
		{"id letters", edit(t, func(m map[string]any) { caller(m, 1)["id"] = "10a2" }), "callers[1].id", ErrValue},
		{"id 17 digits", edit(t, func(m map[string]any) { caller(m, 2)["id"] = "12345678901234567" }), "callers[2].id", ErrValue},
		{"id with space", edit(t, func(m map[string]any) { caller(m, 0)["id"] = "1001 " }), "callers[0].id", ErrValue},
		{"duplicate id", edit(t, func(m map[string]any) { caller(m, 2)["id"] = "1001" }), "callers[2].id", ErrDuplicateCaller},
		{"verifier missing", edit(t, func(m map[string]any) { delete(caller(m, 1), "pin_verifier") }), "callers[1].pin_verifier", ErrMissing},
		{"pin in the clear", edit(t, func(m map[string]any) { caller(m, 1)["pin_verifier"] = "5678" }), "callers[1].pin_verifier", pin.ErrMalformed},
		{"verifier argon2i", edit(t, func(m map[string]any) {
			caller(m, 0)["pin_verifier"] = strings.Replace(verifier5678, "argon2id", "argon2i", 1)
		}), "callers[0].pin_verifier", pin.ErrMalformed},
		{"verifier costs 1 GiB", edit(t, func(m map[string]any) {
			caller(m, 2)["pin_verifier"] = strings.Replace(verifier5678, "m=64,", "m=1048576,", 1)
		}), "callers[2].pin_verifier", pin.ErrParams},
		{"verifier costs 100 passes", edit(t, func(m map[string]any) {
			caller(m, 2)["pin_verifier"] = strings.Replace(verifier5678, "t=3,", "t=100,", 1)
		}), "callers[2].pin_verifier", pin.ErrParams},
		{"language french", edit(t, func(m map[string]any) { caller(m, 0)["language"] = "fr" }), "callers[0].language", ErrValue},
		{"language empty", edit(t, func(m map[string]any) { caller(m, 0)["language"] = "" }), "callers[0].language", ErrValue},
		{"language upper case", edit(t, func(m map[string]any) { caller(m, 1)["language"] = "ES" }), "callers[1].language", ErrValue},
		{"caller limit bad", edit(t, func(m map[string]any) { caller(m, 1)["call_limit"] = "20" }), "callers[1].call_limit", ErrValue},
		{"caller limit zero", edit(t, func(m map[string]any) { caller(m, 1)["call_limit"] = "0m" }), "callers[1].call_limit", ErrValue},
		{"allowed empty", edit(t, func(m map[string]any) { caller(m, 2)["allowed_numbers"] = []any{} }), "callers[2].allowed_numbers", ErrValue},
		{"allowed null", edit(t, func(m map[string]any) { caller(m, 2)["allowed_numbers"] = nil }), "callers[2].allowed_numbers", ErrType},
		{"allowed string", edit(t, func(m map[string]any) { caller(m, 2)["allowed_numbers"] = "5125550123" }), "callers[2].allowed_numbers", ErrType},
		{"allowed seven digits", edit(t, func(m map[string]any) {
			caller(m, 2)["allowed_numbers"] = []any{"5125550123", "555-0124"}
		}), "callers[2].allowed_numbers[1]", dialplan.ErrTooShort},
		{"allowed letters", edit(t, func(m map[string]any) { caller(m, 2)["allowed_numbers"] = []any{"mom"} }), "callers[2].allowed_numbers[0]", dialplan.ErrCharacter},
		{"allowed number", edit(t, func(m map[string]any) { caller(m, 2)["allowed_numbers"] = []any{float64(5125550123)} }), "callers[2].allowed_numbers[0]", ErrType},
		{"allowed but blocked", edit(t, func(m map[string]any) {
			caller(m, 2)["allowed_numbers"] = []any{"5125550123", "(512) 555-0166"}
		}), "callers[2].allowed_numbers[1]", ErrConflict},

		{"blocked invalid", edit(t, func(m map[string]any) { m["blocked_numbers"] = []any{"5125550166", "(123) 555-0100"} }), "blocked_numbers[1]", dialplan.ErrInvalid},
		{"blocked empty string", edit(t, func(m map[string]any) { m["blocked_numbers"] = []any{""} }), "blocked_numbers[0]", dialplan.ErrEmpty},
		{"blocked null", edit(t, func(m map[string]any) { m["blocked_numbers"] = nil }), "blocked_numbers", ErrType},
		{"free seven digits", edit(t, func(m map[string]any) { m["free_numbers"] = []any{"656-4673"} }), "free_numbers[0]", dialplan.ErrTooShort},
		{"free and blocked", edit(t, func(m map[string]any) {
			m["free_numbers"] = []any{"18006564673", "+1 512 555 0166"}
		}), "free_numbers[1]", ErrConflict},
	}
}

func TestBadPolicies(t *testing.T) {
	if _, err := Parse([]byte(base)); err != nil {
		t.Fatalf("base policy: %v", err)
	}
	for _, c := range badPolicies(t) {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse([]byte(c.doc))
			if p != nil || !errors.Is(err, c.err) {
				t.Fatalf("got %v, %v; want %v", p, err, c.err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("%v is not a *FieldError", err)
			}
			if fe.Path != c.path {
				t.Fatalf("error names %q, want %q: %v", fe.Path, c.path, err)
			}
			if c.path != "" && !strings.HasPrefix(err.Error(), c.path+": ") {
				t.Fatalf("message does not start with the path: %v", err)
			}
		})
	}
}

// TestNumberErrorsQuoteInput: a facility fixing its file needs to see which entry is wrong.
func TestNumberErrorsQuoteInput(t *testing.T) {
	doc := edit(t, func(m map[string]any) { m["blocked_numbers"] = []any{"5125550166", "(123) 555-0100"} })
	_, err := Parse([]byte(doc))
	if err == nil || !strings.Contains(err.Error(), `blocked_numbers[1]: written "(123) 555-0100"`) {
		t.Fatalf("got %v", err)
	}
}

func TestBase(t *testing.T) {
	p, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != 7 || p.Facility != "Test Facility" {
		t.Errorf("version %d facility %q", p.Version, p.Facility)
	}
	if want := (dialplan.Plan{Country: "US", AreaCode: "512", OutsideDigit: "9"}); p.DialPlan != want {
		t.Errorf("dial plan %+v", p.DialPlan)
	}
	wantLimits := Limits{
		MaxPINAttempts: 3, Lockout: 15 * time.Minute, CallLimit: 15 * time.Minute,
		PrivilegedCallLimit: time.Hour, EntryTimeout: 10 * time.Second, InterDigitTimeout: 4 * time.Second,
		RingTimeout: 45 * time.Second, AcceptTimeout: 20 * time.Second, LanguageTimeout: 5 * time.Second,
	}
	if p.Limits != wantLimits {
		t.Errorf("limits %+v", p.Limits)
	}

	c, ok := p.Caller("1002")
	if !ok || c.Language != Spanish || c.CallLimit != 20*time.Minute || len(c.Allowed) != 0 {
		t.Errorf("caller 1002: %+v, %v", c, ok)
	}
	// Defaults written in the package doc.
	c, ok = p.Caller("1001")
	if !ok || c.Language != English || c.CallLimit != p.Limits.CallLimit || !c.Allows("+19175550100") {
		t.Errorf("caller 1001: %+v, %v", c, ok)
	}
	if ok, err := pin.Verify(c.PINVerifier, "5678"); !ok || err != nil {
		t.Errorf("verify: %v, %v", ok, err)
	}
	c, ok = p.Caller("0042")
	if !ok || c.Language != English {
		t.Errorf("caller 0042: %+v, %v", c, ok)
	}
	if want := []string{"+15125550123", "+15125550124"}; !slices.Equal(c.Allowed, want) {
		t.Errorf("allowed %q, want %q (two spellings of one number are one entry)", c.Allowed, want)
	}
	for _, keyed := range []string{"5550123", "95125550123", "15125550123", "915125550123"} {
		e, err := p.DialPlan.Dialed(keyed)
		if err != nil || !c.Allows(e) {
			t.Errorf("%s -> %s, %v: not allowed", keyed, e, err)
		}
	}
	if c.Allows("+15125550125") {
		t.Error("caller 0042 may call a number off their list")
	}
	for _, id := range []string{"42", "1003", "", "1001 "} {
		if _, ok := p.Caller(id); ok {
			t.Errorf("caller %q found", id)
		}
	}
	ids := []string{}
	for _, c := range p.Callers() {
		ids = append(ids, c.ID)
	}
	if want := []string{"1001", "1002", "0042"}; !slices.Equal(ids, want) {
		t.Errorf("Callers() ids %q, want file order %q", ids, want)
	}
	if got, want := p.Blocked(), []string{"+15125550166", "+15125550167"}; !slices.Equal(got, want) {
		t.Errorf("Blocked() = %q, want %q", got, want)
	}
	if got, want := p.Free(), []string{"+18006564673"}; !slices.Equal(got, want) {
		t.Errorf("Free() = %q, want %q", got, want)
	}
}

// TestMixedForms is promise 1 through the policy: however a list writes a number and however
// a caller keys it, the lookup finds it.
func TestMixedForms(t *testing.T) {
	doc := edit(t, func(m map[string]any) {
		m["blocked_numbers"] = []any{"(512) 555-0100", "15125550100", "+1 512 555 0100", "512.555.0100", "+1-201-555-0123"}
		m["free_numbers"] = []any{"+1 (800) 656-4673", "800.656.4673"}
	})
	p, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Blocked(), []string{"+12015550123", "+15125550100"}; !slices.Equal(got, want) {
		t.Fatalf("Blocked() = %q, want %q", got, want)
	}
	for _, keyed := range []string{"5550100", "95550100", "5125550100", "15125550100", "95125550100", "915125550100", "01115125550100"} {
		e, err := p.DialPlan.Dialed(keyed)
		if err != nil || !p.IsBlocked(e) || p.IsFree(e) {
			t.Errorf("%s -> %s, %v: blocked %v", keyed, e, err, p.IsBlocked(e))
		}
	}
	for _, keyed := range []string{"18006564673", "8006564673", "98006564673"} {
		e, err := p.DialPlan.Dialed(keyed)
		if err != nil || !p.IsFree(e) || p.IsBlocked(e) {
			t.Errorf("%s -> %s, %v: free %v", keyed, e, err, p.IsFree(e))
		}
	}
	if p.IsBlocked("5125550100") || p.IsBlocked("(512) 555-0100") {
		t.Error("lookups take E.164 only; a raw form matched")
	}
}

func TestOptionalFields(t *testing.T) {
	doc := edit(t, func(m map[string]any) {
		delete(m, "blocked_numbers")
		delete(m, "free_numbers")
		delete(obj(m, "dial_plan"), "area_code")
		delete(obj(m, "dial_plan"), "outside_digit")
		caller(m, 2)["allowed_numbers"] = []any{"+1 512 555 0123"}
	})
	p, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Blocked()) != 0 || len(p.Free()) != 0 || p.IsBlocked("+15125550166") {
		t.Error("absent lists are not empty")
	}
	if _, err := p.DialPlan.Dialed("5550100"); !errors.Is(err, dialplan.ErrNoAreaCode) {
		t.Errorf("seven digits without area code: %v", err)
	}
	if p.Stale.RefuseRecordedAfter != 72*time.Hour {
		t.Errorf("stale rule %+v, want 72h", p.Stale)
	}
	if p.Retention.CallRecords != DefaultCallRecordRetention {
		t.Errorf("retention %+v, want the default %s", p.Retention, DefaultCallRecordRetention)
	}
	if q, err := Parse([]byte(edit(t, func(m map[string]any) { m["retention"] = map[string]any{"call_records": "2160h"} }))); err != nil || q.Retention.CallRecords != 90*24*time.Hour {
		t.Errorf("retention 2160h: %+v %v", q.Retention, err)
	}
	if !p.RebootWindow.Any() || p.RebootWindow.String() != "any time" {
		t.Errorf("reboot window %v, want any time", p.RebootWindow)
	}
	// Recording past expiry for ever is a choice a facility may make, but only in writing.
	p, err = Parse([]byte(edit(t, func(m map[string]any) { m["stale"] = map[string]any{"refuse_recorded_after": "never"} })))
	if err != nil || p.Stale.RefuseRecordedAfter != 0 {
		t.Errorf("stale rule never: %+v %v", p.Stale, err)
	}
	// A policy may have no callers yet, but must say so.
	if _, err := Parse([]byte(edit(t, func(m map[string]any) { m["callers"] = []any{} }))); err != nil {
		t.Errorf("empty callers: %v", err)
	}
}

func TestCallerIsACopy(t *testing.T) {
	p, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := p.Caller("0042")
	c.Allowed[0] = "+19175550100"
	if again, _ := p.Caller("0042"); again.Allowed[0] != "+15125550123" {
		t.Fatal("changing a returned Caller changed the policy")
	}
}

// demoRand makes the demo's salts repeatable, so tests of its text cannot flake.
func demoRand() *mrand.ChaCha8 { return mrand.NewChaCha8([32]byte{'w', 'a', 'l', 'l'}) }

func TestDemo(t *testing.T) {
	b, err := Demo(demoRand(), pin.TestParams(), testRecipients)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != 1 || p.Facility != DemoFacility || p.DialPlan != (dialplan.Plan{Country: DemoCountry, AreaCode: DemoAreaCode}) {
		t.Errorf("demo header: %d %q %+v", p.Version, p.Facility, p.DialPlan)
	}
	if p.Limits.MaxPINAttempts != 3 || p.Limits.Lockout != 15*time.Minute || p.Limits.PrivilegedCallLimit != time.Hour {
		t.Errorf("demo limits: %+v", p.Limits)
	}
	for _, d := range []struct {
		id, pin, lang string
		allowed       []string
		limit         time.Duration
	}{
		{DemoCallerEnglish, DemoPINEnglish, English, nil, 15 * time.Minute},
		{DemoCallerSpanish, DemoPINSpanish, Spanish, nil, 15 * time.Minute},
		{DemoCallerRestricted, DemoPINRestricted, English, []string{DemoAllowedNumber}, DemoRestrictedCallLimit},
	} {
		c, ok := p.Caller(d.id)
		if !ok || c.Language != d.lang || !slices.Equal(c.Allowed, d.allowed) || c.CallLimit != d.limit {
			t.Errorf("caller %s: %+v, %v", d.id, c, ok)
			continue
		}
		if ok, err := pin.Verify(c.PINVerifier, d.pin); !ok || err != nil {
			t.Errorf("caller %s: PIN %s does not verify: %v, %v", d.id, d.pin, ok, err)
		}
		for _, other := range []string{DemoPINEnglish, DemoPINSpanish, DemoPINRestricted, "0000"} {
			if other == d.pin {
				continue
			}
			if ok, _ := pin.Verify(c.PINVerifier, other); ok {
				t.Errorf("caller %s: PIN %s verifies", d.id, other)
			}
		}
		if strings.Contains(string(b), `"`+d.pin+`"`) {
			t.Errorf("PIN %s is in the file in the clear", d.pin)
		}
	}
	if len(p.Callers()) != 3 {
		t.Errorf("%d callers", len(p.Callers()))
	}
	r, _ := p.Caller(DemoCallerRestricted)
	if !r.Allows(DemoAllowedNumber) || r.Allows("+15125550100") {
		t.Error("restricted caller's list not applied")
	}
	if !p.IsBlocked(DemoBlockedNumber) || p.IsBlocked(DemoAllowedNumber) || !p.IsFree(DemoFreeNumber) || p.IsFree(DemoBlockedNumber) {
		t.Error("demo blocked or free numbers wrong")
	}
	if !strings.Contains(string(b), `"call_limit": "5m"`) || !strings.HasSuffix(string(b), "}\n") {
		t.Errorf("demo file not written for people:\n%s", b)
	}
	again, err := Demo(demoRand(), pin.TestParams(), testRecipients)
	if err != nil || string(again) != string(b) {
		t.Error("demo is not a function of its salts")
	}
}

func TestDemoDefaultParams(t *testing.T) {
	if testing.Short() {
		t.Skip("argon2id at full cost")
	}
	b, err := Demo(rand.Reader, pin.DefaultParams(), testRecipients)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := p.Caller(DemoCallerEnglish)
	if !strings.HasPrefix(c.PINVerifier, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("verifier %s", c.PINVerifier)
	}
	if ok, err := pin.Verify(c.PINVerifier, DemoPINEnglish); !ok || err != nil {
		t.Errorf("verify: %v, %v", ok, err)
	}
}

func TestDemoErrors(t *testing.T) {
	boom := errors.New("no entropy")
	if _, err := Demo(iotest.ErrReader(boom), pin.TestParams(), testRecipients); !errors.Is(err, boom) {
		t.Errorf("failing rand: %v", err)
	}
	if _, err := Demo(rand.Reader, pin.Params{}, testRecipients); !errors.Is(err, pin.ErrParams) {
		t.Errorf("zero params: %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(good, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := Load(good); err != nil || p.Version != 7 {
		t.Fatalf("Load: %v, %v", p, err)
	}

	missing := filepath.Join(dir, "missing.json")
	if _, err := Load(missing); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}

	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(base[:40]), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad file: %v", err)
	}

	wrong := filepath.Join(dir, "wrong.json")
	if err := os.WriteFile(wrong, []byte(edit(t, func(m map[string]any) { caller(m, 1)["language"] = "fr" })), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(wrong)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "callers[1].language" || !strings.Contains(err.Error(), wrong) {
		t.Errorf("wrong field: %v", err)
	}

	huge := filepath.Join(dir, "huge.json")
	if err := os.WriteFile(huge, make([]byte, MaxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(huge); !errors.Is(err, ErrValue) || !strings.Contains(err.Error(), huge) {
		t.Errorf("huge file: %v", err)
	}
}

// seeds are the fuzz corpus: the base, the demo and every broken policy.
func seeds(t testing.TB) []string {
	demo, err := Demo(demoRand(), pin.TestParams(), testRecipients)
	if err != nil {
		t.Fatal(err)
	}
	s := []string{base, string(demo)}
	for _, c := range badPolicies(t) {
		s = append(s, c.doc)
	}
	return s
}

func TestSeedCorpus(t *testing.T) {
	if n := len(seeds(t)); n < 50 {
		t.Fatalf("fuzz seed corpus has %d entries", n)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			var fe *FieldError
			if p != nil || !errors.As(err, &fe) {
				t.Fatalf("got %v, %v", p, err)
			}
			return
		}
		if p.Version < 1 || strings.TrimSpace(p.Facility) == "" || p.DialPlan.Validate() != nil {
			t.Fatalf("accepted %+v", p)
		}
		if l := p.Limits; l.MaxPINAttempts < 1 || l.Lockout <= 0 || l.CallLimit <= 0 || l.PrivilegedCallLimit <= 0 ||
			l.EntryTimeout <= 0 || l.InterDigitTimeout <= 0 || l.RingTimeout <= 0 || l.AcceptTimeout <= 0 || l.LanguageTimeout <= 0 {
			t.Fatalf("accepted limits %+v", l)
		}
		for _, e := range p.Free() {
			if p.IsBlocked(e) {
				t.Fatalf("%s both free and blocked", e)
			}
		}
		for _, list := range [][]string{p.Blocked(), p.Free()} {
			for _, e := range list {
				if again, err := p.DialPlan.Written(e); err != nil || again != e {
					t.Fatalf("stored number %q is not E.164", e)
				}
			}
		}
		for _, c := range p.Callers() {
			if !isCallerID(c.ID) || (c.Language != English && c.Language != Spanish) || c.CallLimit <= 0 {
				t.Fatalf("accepted caller %+v", c)
			}
			if _, err := pin.Parse(c.PINVerifier); err != nil {
				t.Fatalf("accepted verifier: %v", err)
			}
			for _, e := range c.Allowed {
				if p.IsBlocked(e) || !strings.HasPrefix(e, "+") {
					t.Fatalf("caller %s allowed %q", c.ID, e)
				}
			}
		}
	})
}

func window(w, zone string) map[string]any {
	return map[string]any{"reboot_window": w, "time_zone": zone}
}

// The reboot window is read in the facility's zone, summer time included, and may cross
// midnight.
func TestRebootWindow(t *testing.T) {
	chicago, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		window, zone string
		at           time.Time
		in           bool
	}{
		{"02:00-05:00", "America/Chicago", time.Date(2026, 1, 15, 2, 0, 0, 0, chicago), true},
		{"02:00-05:00", "America/Chicago", time.Date(2026, 1, 15, 4, 59, 59, 0, chicago), true},
		{"02:00-05:00", "America/Chicago", time.Date(2026, 1, 15, 5, 0, 0, 0, chicago), false},
		{"02:00-05:00", "America/Chicago", time.Date(2026, 1, 15, 1, 59, 0, 0, chicago), false},
		// 08:30 UTC is 02:30 in Chicago in winter (CST, -6) and 03:30 in summer (CDT, -5).
		{"02:00-03:00", "America/Chicago", time.Date(2026, 1, 15, 8, 30, 0, 0, time.UTC), true},
		{"02:00-03:00", "America/Chicago", time.Date(2026, 7, 15, 8, 30, 0, 0, time.UTC), false},
		{"22:00-04:00", "UTC", time.Date(2026, 7, 15, 23, 0, 0, 0, time.UTC), true},
		{"22:00-04:00", "UTC", time.Date(2026, 7, 15, 3, 59, 0, 0, time.UTC), true},
		{"22:00-04:00", "UTC", time.Date(2026, 7, 15, 4, 0, 0, 0, time.UTC), false},
		{"22:00-04:00", "UTC", time.Date(2026, 7, 15, 12, 0, 0, 0, time.UTC), false},
	} {
		p, err := Parse([]byte(edit(t, func(m map[string]any) { m["firmware"] = window(tc.window, tc.zone) })))
		if err != nil {
			t.Fatal(err)
		}
		if got := p.RebootWindow.Contains(tc.at); got != tc.in {
			t.Errorf("%s %s at %s: in window %v, want %v", tc.window, tc.zone, tc.at.UTC(), got, tc.in)
		}
		if want := tc.window + " " + tc.zone; p.RebootWindow.String() != want {
			t.Errorf("String %q, want %q", p.RebootWindow.String(), want)
		}
	}
}
