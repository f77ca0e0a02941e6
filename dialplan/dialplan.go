// Package dialplan turns what a caller keys on a wall phone, and how a number is written in a
// list or a policy file, into one E.164 string such as "+15125550100".
//
// It keeps the first promise's groundwork: "(512) 555-0100", "15125550100",
// "+1 512 555 0100", "512.555.0100" and, under a plan with area code 512, the seven digits
// "5550100" are one number, and the privileged, blocked and free decisions compare only that
// one string. Mobiles need nothing special: in the North American Numbering Plan a mobile
// number has the same form as a landline, and both normalise the same way.
//
// # The returned number is the dialed number
//
// The E.164 string that [Plan.Dialed] returns is both the key every decision is made on and
// the number the phone must place the call to; the keyed digits must never reach the trunk.
// So no quirk of normalisation can make the phone decide about one number and connect
// another.
//
// # Dialing rules
//
// Only plans for regions of the North American Numbering Plan (US, CA, PR, ...) are accepted,
// because the rules of [Plan.Dialed] are that plan's; a plan for any other region is refused
// rather than guessed at. Numbers anywhere in the world are reachable through 011.
//
// Errors quote the input. Treat an error like the number it quotes: a mistyped attorney's
// number is as sensitive as the right one.
package dialplan

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Errors. Each is wrapped with the input that caused it; test with errors.Is.
var (
	// ErrPlan: the plan itself is unusable (unknown or non-NANP country, malformed area code
	// or outside digit). Every method of an invalid plan returns it.
	ErrPlan = errors.New("dialplan: invalid plan")
	// ErrEmpty: nothing was dialed or written.
	ErrEmpty = errors.New("dialplan: no number")
	// ErrCharacter: the input holds something that is not part of a phone number, such as a
	// letter, a star code or an extension.
	ErrCharacter = errors.New("dialplan: not part of a phone number")
	// ErrTooShort: fewer digits than any number the plan can reach.
	ErrTooShort = errors.New("dialplan: too few digits")
	// ErrTooLong: more digits than any phone number has.
	ErrTooLong = errors.New("dialplan: too many digits")
	// ErrNoAreaCode: seven digits were dialed under a plan with no home area code.
	ErrNoAreaCode = errors.New("dialplan: seven digits but no home area code")
	// ErrInvalid: the digits have a dialing form but name no number valid in any region
	// (unassigned area code or country code, wrong length for the country).
	ErrInvalid = errors.New("dialplan: not a valid number")
	// ErrAmbiguous: the digits name one number with the outside digit stripped and another
	// without. The NANP lengths make this impossible today; it exists so that a change of
	// rules fails loudly instead of choosing.
	ErrAmbiguous = errors.New("dialplan: ambiguous outside digit")
)

const (
	// maxInput bounds the work done on hostile input; no real number comes near it.
	maxInput = 64
	// maxE164Digits is the longest number E.164 allows, country code included.
	maxE164Digits = 15
	// nanpIDD is the NANP's international prefix.
	nanpIDD = "011"
	// endKey is the key that ends number entry on the phone.
	endKey = "#"
)

// Plan is a facility's dialing plan: where the phone is, so that national and local numbers
// mean something.
type Plan struct {
	// Country is the ISO 3166 region of the phone, e.g. "US"; it must be a NANP region.
	Country string `json:"country"`
	// AreaCode is the home area code for seven-digit dialing; empty means seven-digit
	// numbers are refused.
	AreaCode string `json:"area_code"`
	// OutsideDigit is the digit the facility's habit puts before an outside number, e.g.
	// "9"; empty means none. It is optional when dialing: see [Plan.Dialed].
	OutsideDigit string `json:"outside_digit"`
}

// Validate reports whether the plan can be used. It wraps [ErrPlan].
func (p Plan) Validate() error {
	if p.Country == "" {
		return fmt.Errorf("%w: country is empty", ErrPlan)
	}
	// libphonenumber looks regions up case-sensitively; "us" is refused rather than folded
	// so that a policy file means exactly what it says.
	if !phonenumbers.IsNANPACountry(p.Country) {
		return fmt.Errorf("%w: country %q is not a region of the North American Numbering Plan", ErrPlan, p.Country)
	}
	if p.AreaCode != "" && !isAreaCode(p.AreaCode) {
		return fmt.Errorf("%w: area code %q is not three digits NXX (N = 2-9, not N11)", ErrPlan, p.AreaCode)
	}
	if p.OutsideDigit != "" {
		// 0 and 1 begin the international and long-distance prefixes, so stripping them
		// would change what those prefixes mean.
		if len(p.OutsideDigit) != 1 || p.OutsideDigit[0] < '2' || p.OutsideDigit[0] > '9' {
			return fmt.Errorf("%w: outside digit %q is not one digit 2-9", ErrPlan, p.OutsideDigit)
		}
	}
	return nil
}

// isAreaCode reports whether s has the form of a NANP area code. N11 codes are service codes
// (411, 911) and never area codes.
func isAreaCode(s string) bool {
	if len(s) != 3 || !allDigits(s) || s[0] < '2' {
		return false
	}
	return s[1:] != "11"
}

// Dialed returns the E.164 form of what a caller keyed: ASCII digits, optionally ended by
// "#", the key that ends number entry. Any other "*" or "#" is refused with [ErrCharacter]:
// star codes are features of a switch, not numbers, and the phone places no call it cannot
// name in E.164.
//
// After the outside digit is dealt with, the digits are read as:
//
//	011 + digits          international: country code and number
//	1 + 10 digits         NANP long distance
//	10 digits             NANP national: area code and number
//	7 digits              local: the plan's area code and number (ErrNoAreaCode without one)
//
// and the result must be a valid number for its region.
//
// The outside digit: when the plan has one and the digits start with it, the digits are read
// both with that digit stripped and as keyed. If exactly one reading is a valid number, that
// one is the answer; so "95125550100" and "5125550100" are both +15125550100 under a plan with
// outside digit 9, and "9876543" (no outside digit, exchange 987) is still a local number. If
// neither is valid, the error is the stripped reading's, because a caller who starts with the
// outside digit most likely meant it. If both were valid and different, the answer is
// [ErrAmbiguous]. Under NANP rules that cannot happen: the readings differ in length by one,
// and the whole one starts with a digit 2-9, so it is neither 1+10 digits nor international;
// the only pair of lengths left, seven digits against the outside digit + 011 + three, needs
// a country with three-digit numbers, and there is none.
func (p Plan) Dialed(digits string) (string, error) {
	e164, err := p.dialed(digits)
	if err != nil {
		return "", fmt.Errorf("dialed %q: %w", digits, err)
	}
	return e164, nil
}

func (p Plan) dialed(digits string) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	if len(digits) > maxInput {
		return "", fmt.Errorf("%w: %d characters", ErrTooLong, len(digits))
	}
	keyed := strings.TrimSuffix(digits, endKey)
	if keyed == "" {
		return "", ErrEmpty
	}
	for i, c := range keyed {
		if c < '0' || c > '9' {
			return "", fmt.Errorf("%w: %q at position %d", ErrCharacter, c, i)
		}
	}
	if p.OutsideDigit == "" || !strings.HasPrefix(keyed, p.OutsideDigit) {
		return p.resolve(keyed, true)
	}
	stripped, errStripped := p.resolve(keyed[len(p.OutsideDigit):], true)
	whole, errWhole := p.resolve(keyed, true)
	switch {
	case errStripped == nil && errWhole == nil && stripped != whole:
		return "", fmt.Errorf("%w: %s with outside digit %s stripped, %s without", ErrAmbiguous, stripped, p.OutsideDigit, whole)
	case errStripped == nil:
		return stripped, nil
	case errWhole == nil:
		return whole, nil
	default:
		return "", errStripped
	}
}

// Written returns the E.164 form of a number as written in a list or a policy file:
// "+1 512 555 0100", "+44 20 7946 0000", "(512) 555-0100", "512.555.0100", "1-512-555-0100",
// "011 52 55 1234 5678". Digits may be separated by spaces, dots, dashes and one pair of
// parentheses; a "+" may only come first.
//
// Unlike [Plan.Dialed], Written takes no outside digit and no seven-digit local number: a
// list is read far from the keypad, often under another facility's plan (the privileged
// registry is shared), and a seven-digit entry would silently name a different number in
// each area code. Such an entry is refused with [ErrTooShort]. Letters are refused too,
// including vanity numbers such as 1-800-FLOWERS, so that a typo cannot become a number.
func (p Plan) Written(s string) (string, error) {
	e164, err := p.written(s)
	if err != nil {
		return "", fmt.Errorf("written %q: %w", s, err)
	}
	return e164, nil
}

func (p Plan) written(s string) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	if len(s) > maxInput {
		return "", fmt.Errorf("%w: %d characters", ErrTooLong, len(s))
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", ErrEmpty
	}
	plus := strings.HasPrefix(s, "+")
	if plus {
		s = s[1:]
	}
	var b strings.Builder
	open, pairs := false, 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			b.WriteRune(c)
		case c == ' ', c == '.', c == '-':
		case c == '(' && !open && pairs == 0:
			open = true
		case c == ')' && open:
			open, pairs = false, pairs+1
		default:
			return "", fmt.Errorf("%w: %q", ErrCharacter, c)
		}
	}
	if open {
		return "", fmt.Errorf("%w: unclosed parenthesis", ErrCharacter)
	}
	d := b.String()
	if d == "" {
		return "", ErrEmpty
	}
	if plus {
		return international(d)
	}
	return p.resolve(d, false)
}

// resolve applies the NANP dialing forms to digits that hold nothing else. local says
// whether a seven-digit number takes the plan's area code.
func (p Plan) resolve(d string, local bool) (string, error) {
	if rest, ok := strings.CutPrefix(d, nanpIDD); ok {
		return international(rest)
	}
	var candidate string
	switch n := len(d); {
	case n < 7:
		return "", fmt.Errorf("%w: %d digits", ErrTooShort, n)
	case n == 7 && !local:
		return "", fmt.Errorf("%w: 7 digits; a written number needs its area code", ErrTooShort)
	case n == 7 && p.AreaCode == "":
		return "", ErrNoAreaCode
	case n == 7:
		candidate = "+1" + p.AreaCode + d
	case n == 10:
		candidate = "+1" + d
	case n == 11 && d[0] == '1':
		candidate = "+" + d
	case n > 11:
		return "", fmt.Errorf("%w: %d digits", ErrTooLong, n)
	default:
		return "", fmt.Errorf("%w: %d digits is neither 7, 10 nor 1 and 10", ErrInvalid, n)
	}
	return valid(candidate)
}

// international handles the digits after 011 or "+": a country code and a number.
func international(d string) (string, error) {
	switch {
	case len(d) == 0:
		return "", fmt.Errorf("%w: no digits after the international prefix", ErrTooShort)
	case len(d) > maxE164Digits+1:
		// One more than E.164 allows, for a national trunk 0 that libphonenumber drops
		// ("+44 (0)20 ...").
		return "", fmt.Errorf("%w: %d digits after the international prefix", ErrTooLong, len(d))
	}
	return valid("+" + d)
}

// valid parses "+" and digits, insists that libphonenumber's data knows it as a valid
// number, and returns libphonenumber's own E.164 form of it, which is what is dialed. The
// form may be shorter than the input: a national trunk 0 after the country code is dropped.
// Only digits reach here, so libphonenumber's leniency (letters, extensions) never applies.
func valid(candidate string) (string, error) {
	// No default region: after a "+" the country code is part of the number.
	n, err := phonenumbers.Parse(candidate, "ZZ")
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if !phonenumbers.IsValidNumber(n) {
		return "", fmt.Errorf("%w: %s", ErrInvalid, candidate)
	}
	e164 := phonenumbers.Format(n, phonenumbers.E164)
	if len(e164) > maxE164Digits+1 {
		return "", fmt.Errorf("%w: %s", ErrTooLong, e164)
	}
	return e164, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
