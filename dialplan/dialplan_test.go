package dialplan

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

func austin() Plan { return Plan{Country: "US", AreaCode: "512"} }

func austinNine() Plan { return Plan{Country: "US", AreaCode: "512", OutsideDigit: "9"} }

func noArea() Plan { return Plan{Country: "US"} }

type vector struct {
	name string
	plan Plan
	in   string
	want string // E.164 when err is nil
	err  error
}

// dialedVectors are what callers key, with what the phone must make of them.
func dialedVectors() []vector {
	return []vector{
		{"national", austin(), "5125550100", "+15125550100", nil},
		{"long distance", austin(), "15125550100", "+15125550100", nil},
		{"end key dropped", austin(), "5125550100#", "+15125550100", nil},
		{"seven digits take the area code", austin(), "5550100", "+15125550100", nil},
		{"seven digits without area code", noArea(), "5550100", "", ErrNoAreaCode},
		{"other area code", austin(), "2125550100", "+12125550100", nil},
		{"us mobile", austin(), "2015550123", "+12015550123", nil},
		{"canada", austin(), "16135550100", "+16135550100", nil},
		{"toll free 800", austin(), "18006564673", "+18006564673", nil},
		{"toll free 888", austin(), "8885550100", "+18885550100", nil},
		{"uk london", austin(), "011442079460000", "+442079460000", nil},
		{"uk mobile", austin(), "011447911123456", "+447911123456", nil},
		{"uk with trunk zero", austin(), "0114402079460000", "+442079460000", nil},
		{"mexico city", austin(), "011525512345678", "+525512345678", nil},
		{"international to nanp", austin(), "01115125550100", "+15125550100", nil},

		{"outside digit and ten", austinNine(), "95125550100", "+15125550100", nil},
		{"outside digit and eleven", austinNine(), "915125550100", "+15125550100", nil},
		{"outside digit and seven", austinNine(), "95550100", "+15125550100", nil},
		{"outside digit and international", austinNine(), "9011442079460000", "+442079460000", nil},
		{"outside digit omitted", austinNine(), "5125550100", "+15125550100", nil},
		{"seven digits starting with the outside digit", austinNine(), "9876543", "+15129876543", nil},
		{"ten digits starting with the outside digit", austinNine(), "9175550100", "+19175550100", nil},
		{"outside digit and bad number", austinNine(), "91235550100", "", ErrInvalid},
		{"outside digit alone", austinNine(), "9", "", ErrTooShort},
		{"outside digit of another plan", austin(), "95125550100", "", ErrInvalid},

		{"empty", austin(), "", "", ErrEmpty},
		{"end key alone", austin(), "#", "", ErrEmpty},
		{"too short", austin(), "555010", "", ErrTooShort},
		{"emergency code", austin(), "911", "", ErrTooShort},
		{"eight digits", austin(), "55501000", "", ErrInvalid},
		{"eleven digits not starting with 1", austin(), "25125550100", "", ErrInvalid},
		{"twelve digits", austin(), "151255501000", "", ErrTooLong},
		{"area code starts with 1", austin(), "1235550100", "", ErrInvalid},
		{"area code starts with 0", austin(), "0125550100", "", ErrInvalid},
		{"area code n11", austin(), "9115550100", "", ErrInvalid},
		{"area code 555", austin(), "5551234567", "", ErrInvalid},
		{"unassigned area code", austin(), "2225550100", "", ErrInvalid},
		{"exchange starts with 1", austin(), "5121550100", "", ErrInvalid},
		{"international prefix alone", austin(), "011", "", ErrTooShort},
		{"unknown country code", austin(), "0119991234567", "", ErrInvalid},
		{"international too long", austin(), "01144207946000000000", "", ErrTooLong},
		{"star code", austin(), "*675125550100", "", ErrCharacter},
		{"hash inside", austin(), "512555#0100", "", ErrCharacter},
		{"extension after hash", austin(), "5125550100#12", "", ErrCharacter},
		{"letters", austin(), "1800FLOWERS", "", ErrCharacter},
		{"plus", austin(), "+15125550100", "", ErrCharacter},
		{"spaces", austin(), "512 555 0100", "", ErrCharacter},
		{"arabic-indic digits", austin(), "٥١٢٥٥٥٠١٠٠", "", ErrCharacter},
		{"huge", austin(), strings.Repeat("5", 1000), "", ErrTooLong},
		{"invalid plan", Plan{Country: "GB"}, "5125550100", "", ErrPlan},
	}
}

// writtenVectors are numbers as a facility or the registry writes them.
func writtenVectors() []vector {
	return []vector{
		{"parentheses", austin(), "(512) 555-0100", "+15125550100", nil},
		{"leading one", austin(), "15125550100", "+15125550100", nil},
		{"e164 with spaces", austin(), "+1 512 555 0100", "+15125550100", nil},
		{"dots", austin(), "512.555.0100", "+15125550100", nil},
		{"dashes and one", austin(), "1-512-555-0100", "+15125550100", nil},
		{"e164", austin(), "+15125550100", "+15125550100", nil},
		{"e164 with parentheses", austin(), "+1 (512) 555-0100", "+15125550100", nil},
		{"surrounding space", austin(), "  512 555 0100\t", "+15125550100", nil},
		{"plan without area code", noArea(), "(512) 555-0100", "+15125550100", nil},
		{"outside digit is not written", austinNine(), "5125550100", "+15125550100", nil},
		{"us mobile", austin(), "+1 201-555-0123", "+12015550123", nil},
		{"toll free", austin(), "+1 800 656 4673", "+18006564673", nil},
		{"toll free 888", austin(), "888-555-0100", "+18885550100", nil},
		{"uk", austin(), "+44 20 7946 0000", "+442079460000", nil},
		{"uk with trunk zero", austin(), "+44 (0)20 7946 0000", "+442079460000", nil},
		{"uk mobile", austin(), "+44 7911 123456", "+447911123456", nil},
		{"mexico", austin(), "+52 55 1234 5678", "+525512345678", nil},
		{"mexico dialed form", austin(), "011 52 55 1234 5678", "+525512345678", nil},

		{"empty", austin(), "", "", ErrEmpty},
		{"blank", austin(), "   ", "", ErrEmpty},
		{"punctuation only", austin(), "(-.)", "", ErrEmpty},
		{"plus only", austin(), "+", "", ErrEmpty},
		{"seven digits", austin(), "555-0100", "", ErrTooShort},
		{"outside digit", austinNine(), "9 512 555 0100", "", ErrInvalid},
		{"area code starts with 1", austin(), "(123) 555-0100", "", ErrInvalid},
		{"area code 555", austin(), "555-123-4567", "", ErrInvalid},
		{"uk drama range", austin(), "+44 7700 900123", "", ErrInvalid},
		{"unknown country code", austin(), "+999 1234 5678", "", ErrInvalid},
		{"plus inside", austin(), "1+5125550100", "", ErrCharacter},
		{"two pluses", austin(), "++15125550100", "", ErrCharacter},
		{"vanity letters", austin(), "1-800-FLOWERS", "", ErrCharacter},
		{"letters", austin(), "call me", "", ErrCharacter},
		{"extension", austin(), "512 555 0100 ext 12", "", ErrCharacter},
		{"hash extension", austin(), "+1 512 555 0100#12", "", ErrCharacter},
		{"tel uri", austin(), "tel:+15125550100", "", ErrCharacter},
		{"slash", austin(), "512/555-0100", "", ErrCharacter},
		{"nested parentheses", austin(), "((512)) 555-0100", "", ErrCharacter},
		{"two pairs", austin(), "(512) (555) 0100", "", ErrCharacter},
		{"unclosed parenthesis", austin(), "(512 555-0100", "", ErrCharacter},
		{"closing first", austin(), ")512( 555-0100", "", ErrCharacter},
		{"non-breaking space", austin(), "512\u00a0555 0100", "", ErrCharacter},
		{"fullwidth digits", austin(), "５１２５５５０１００", "", ErrCharacter},
		{"too long", austin(), "+1 512 555 0100 0000 0000", "", ErrTooLong},
		{"huge", austin(), strings.Repeat("5", 1000), "", ErrTooLong},
		{"invalid plan", Plan{Country: "US", AreaCode: "911"}, "5125550100", "", ErrPlan},
	}
}

func check(t *testing.T, v vector, got string, err error) {
	t.Helper()
	if v.err != nil {
		if !errors.Is(err, v.err) {
			t.Fatalf("%q: got (%q, %v), want error %v", v.in, got, err, v.err)
		}
		if got != "" {
			t.Fatalf("%q: got %q with error %v", v.in, got, err)
		}
		if len(v.in) < maxInput && !strings.Contains(err.Error(), fmt.Sprintf("%q", v.in)) {
			t.Errorf("error %q does not quote the input %q", err, v.in)
		}
		return
	}
	if err != nil || got != v.want {
		t.Fatalf("%q: got (%q, %v), want %q", v.in, got, err, v.want)
	}
}

func TestDialed(t *testing.T) {
	for _, v := range dialedVectors() {
		t.Run(v.name, func(t *testing.T) {
			got, err := v.plan.Dialed(v.in)
			check(t, v, got, err)
		})
	}
}

func TestWritten(t *testing.T) {
	for _, v := range writtenVectors() {
		t.Run(v.name, func(t *testing.T) {
			got, err := v.plan.Written(v.in)
			check(t, v, got, err)
		})
	}
}

// TestOneNumber is promise 1 in miniature: every way of naming a number, keyed or written,
// lands on the same string, so a privileged number cannot be reached by a form the registry
// does not match.
func TestOneNumber(t *testing.T) {
	plan := austinNine()
	for _, want := range []string{"+15125550100", "+12015550123"} {
		national := want[2:]
		written := []string{
			national[:3] + "." + national[3:6] + "." + national[6:],
			"(" + national[:3] + ") " + national[3:6] + "-" + national[6:],
			"1" + national,
			"+1 " + national[:3] + " " + national[3:6] + " " + national[6:],
			"011 1 " + national,
		}
		for _, s := range written {
			if got, err := plan.Written(s); err != nil || got != want {
				t.Errorf("Written(%q) = %q, %v; want %q", s, got, err, want)
			}
		}
		dialed := []string{national, "1" + national, "9" + national, "91" + national, "011" + want[1:], "9011" + want[1:]}
		if national[:3] == plan.AreaCode {
			dialed = append(dialed, national[3:], "9"+national[3:])
		}
		for _, s := range dialed {
			if got, err := plan.Dialed(s); err != nil || got != want {
				t.Errorf("Dialed(%q) = %q, %v; want %q", s, got, err, want)
			}
		}
	}
}

// TestMobilesAreNotSpecial documents a libphonenumber quirk the design relies on: NANP
// mobiles cannot be told from landlines, so the library calls both FIXED_LINE_OR_MOBILE and
// they normalise by one rule. The 555-01XX range, reserved for fiction, is valid to it.
func TestMobilesAreNotSpecial(t *testing.T) {
	for _, s := range []string{"+12015550123", "+15125550100", "+15125550199"} {
		n, err := phonenumbers.Parse(s, "ZZ")
		if err != nil {
			t.Fatal(err)
		}
		if typ := phonenumbers.GetNumberType(n); typ != phonenumbers.FIXED_LINE_OR_MOBILE {
			t.Errorf("%s: type %v, want FIXED_LINE_OR_MOBILE", s, typ)
		}
		if !phonenumbers.IsValidNumber(n) {
			t.Errorf("%s: not valid", s)
		}
	}
}

func TestValidate(t *testing.T) {
	good := []Plan{
		{Country: "US"},
		{Country: "US", AreaCode: "512"},
		{Country: "US", AreaCode: "212", OutsideDigit: "9"},
		{Country: "CA", AreaCode: "613", OutsideDigit: "8"},
		{Country: "PR", AreaCode: "787"},
	}
	for _, p := range good {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
	bad := []Plan{
		{},
		{Country: "us"},
		{Country: "GB"},
		{Country: "MX"},
		{Country: "XX"},
		{Country: "US", AreaCode: "51"},
		{Country: "US", AreaCode: "5120"},
		{Country: "US", AreaCode: "112"},
		{Country: "US", AreaCode: "012"},
		{Country: "US", AreaCode: "911"},
		{Country: "US", AreaCode: "5a2"},
		{Country: "US", OutsideDigit: "0"},
		{Country: "US", OutsideDigit: "1"},
		{Country: "US", OutsideDigit: "99"},
		{Country: "US", OutsideDigit: "*"},
	}
	for _, p := range bad {
		if err := p.Validate(); !errors.Is(err, ErrPlan) {
			t.Errorf("%+v: got %v, want ErrPlan", p, err)
		}
	}
}

// TestConcurrent runs under -race: the agent normalises from several goroutines (keypad,
// policy reload), and libphonenumber keeps caches inside.
func TestConcurrent(t *testing.T) {
	plan := austinNine()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, v := range dialedVectors() {
				got, err := plan.Dialed(v.in)
				if err == nil && !strings.HasPrefix(got, "+") {
					t.Errorf("Dialed(%q) = %q", v.in, got)
				}
			}
		}()
	}
	wg.Wait()
}

// seeds are the fuzz corpus: every vector's input.
func seeds() []string {
	var s []string
	for _, v := range dialedVectors() {
		s = append(s, v.in)
	}
	for _, v := range writtenVectors() {
		s = append(s, v.in)
	}
	return s
}

func TestSeedCorpus(t *testing.T) {
	if n := len(seeds()); n < 50 {
		t.Fatalf("fuzz seed corpus has %d entries", n)
	}
}

// sentinels are every error the package may return; fuzzing checks each failure is one.
func sentinels() []error {
	return []error{ErrPlan, ErrEmpty, ErrCharacter, ErrTooShort, ErrTooLong, ErrNoAreaCode, ErrInvalid, ErrAmbiguous}
}

// checkOutput holds what any successful normalisation must satisfy: E.164 shape, a fixed
// point of Written, and the same number again when dialed in its canonical keyed form.
func checkOutput(t *testing.T, plan Plan, in, got string, err error) {
	t.Helper()
	if err != nil {
		if errors.Is(err, ErrAmbiguous) {
			t.Fatalf("%q: %v", in, err)
		}
		for _, s := range sentinels() {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("%q: error wraps no sentinel: %v", in, err)
	}
	if len(got) < 2 || got[0] != '+' || !allDigits(got[1:]) || len(got) > maxE164Digits+1 {
		t.Fatalf("%q: output %q is not E.164", in, got)
	}
	if again, err := plan.Written(got); err != nil || again != got {
		t.Fatalf("%q -> %q: Written gives %q, %v", in, got, again, err)
	}
	keyed := "011" + got[1:]
	if strings.HasPrefix(got, "+1") {
		keyed = got[1:]
	}
	if again, err := plan.Dialed(keyed); err != nil || again != got {
		t.Fatalf("%q -> %q: Dialed(%q) gives %q, %v", in, got, keyed, again, err)
	}
}

func FuzzDialed(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, plan := range []Plan{austin(), austinNine(), noArea()} {
			got, err := plan.Dialed(in)
			checkOutput(t, plan, in, got, err)
		}
	})
}

func FuzzWritten(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, plan := range []Plan{austin(), noArea()} {
			got, err := plan.Written(in)
			checkOutput(t, plan, in, got, err)
		}
	})
}

func BenchmarkDialed(b *testing.B) {
	plan := austinNine()
	for _, bc := range []struct{ name, in string }{
		{"national", "5125550100"},
		{"local", "5550100"},
		{"outside digit", "915125550100"},
		{"international", "011442079460000"},
		{"invalid", "1235550100"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				_, _ = plan.Dialed(bc.in)
			}
		})
	}
}
