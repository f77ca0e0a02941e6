package policy

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/wallphone/wallphone/pin"
)

// The demo facility, as the simulated phone writes it on first run. Its numbers are in the
// 555-01XX range that is reserved for fiction, except the free hotline.
const (
	DemoFacility = "demo-county"
	DemoCountry  = "US"
	DemoAreaCode = "512"

	// Caller 1001 hears English and may call any number that is not blocked.
	DemoCallerEnglish = "1001"
	DemoPINEnglish    = "1234"
	// Caller 1002 hears Spanish and may call any number that is not blocked.
	DemoCallerSpanish = "1002"
	DemoPINSpanish    = "5678"
	// Caller 1003 hears English, may call only DemoAllowedNumber, for DemoRestrictedCallLimit.
	DemoCallerRestricted    = "1003"
	DemoPINRestricted       = "2468"
	DemoAllowedNumber       = "+15125550123"
	DemoRestrictedCallLimit = 5 * time.Minute

	// DemoBlockedNumber is on the block list.
	DemoBlockedNumber = "+15125550166"
	// DemoFreeNumber is a free, unrecorded hotline (RAINN's number, as demo data).
	DemoFreeNumber = "+18006564673"
)

// demoLimits are the demo facility's limits, also the example in the package doc.
func demoLimits() fileLimits {
	return fileLimits{
		MaxPINAttempts:      ptr[int64](3),
		Lockout:             ptr("15m"),
		CallLimit:           ptr("15m"),
		PrivilegedCallLimit: ptr("60m"),
		EntryTimeout:        ptr("10s"),
		InterDigitTimeout:   ptr("4s"),
		RingTimeout:         ptr("45s"),
		AcceptTimeout:       ptr("20s"),
		LanguageTimeout:     ptr("5s"),
	}
}

// DemoSpoolMaxBytes is the demo phone's spool bound.
const DemoSpoolMaxBytes = 256 << 20

// Demo returns the demo facility's policy file, indented JSON, with PIN verifiers made with
// params and salts from rand, sealing recordings to recipients. The numbers are written the ways people write them, as a real
// file would have them; Parse normalises them.
func Demo(rand io.Reader, params pin.Params, recipients []string) ([]byte, error) {
	type demoCaller struct {
		id, pin, lang string
		allowed       []string
		limit         time.Duration
	}
	demo := []demoCaller{
		{id: DemoCallerEnglish, pin: DemoPINEnglish, lang: English},
		{id: DemoCallerSpanish, pin: DemoPINSpanish, lang: Spanish},
		{id: DemoCallerRestricted, pin: DemoPINRestricted, lang: English, allowed: []string{"+1 512 555 0123"}, limit: DemoRestrictedCallLimit},
	}
	callers := make([]fileCaller, 0, len(demo))
	for _, d := range demo {
		v, err := pin.Hash(d.pin, params, rand)
		if err != nil {
			return nil, fmt.Errorf("demo policy: caller %s: %w", d.id, err)
		}
		c := fileCaller{ID: ptr(d.id), PINVerifier: ptr(v), Language: ptr(d.lang)}
		if d.allowed != nil {
			c.AllowedNumbers = ptr(d.allowed)
		}
		if d.limit != 0 {
			c.CallLimit = ptr(shortDuration(d.limit))
		}
		callers = append(callers, c)
	}
	f := file{
		Version:        ptr[int64](1),
		Facility:       ptr(DemoFacility),
		DialPlan:       &filePlan{Country: ptr(DemoCountry), AreaCode: ptr(DemoAreaCode), OutsideDigit: ptr("")},
		Limits:         ptr(demoLimits()),
		Callers:        &callers,
		BlockedNumbers: &[]string{"(512) 555-0166"},
		FreeNumbers:    &[]string{"1-800-656-4673"},
		Recording: &fileRecording{
			Recipients:    &recipients,
			Segment:       ptr("5s"),
			SpoolMaxBytes: ptr[int64](DemoSpoolMaxBytes),
			WhenFull:      ptr(WhenFullRefuse),
		},
		// Three days without a fresh registry: a long weekend's outage passes unnoticed by
		// callers, while a phone cut off for good stops recording calls to numbers it cannot
		// know were registered meanwhile.
		Stale: &fileStale{RefuseRecordedAfter: ptr("72h")},
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("demo policy: %w", err)
	}
	b = append(b, '\n')
	// What the phone writes on first run it must also accept; a failure here is a bug in
	// this file, caught before a phone refuses its own demo.
	if _, err := Parse(b); err != nil {
		return nil, fmt.Errorf("demo policy does not parse: %w", err)
	}
	return b, nil
}

// shortDuration writes whole minutes and hours as "5m" and "1h" rather than "5m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func ptr[T any](v T) *T { return &v }
