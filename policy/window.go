package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	// A phone's root file system need not carry the zone database, and a policy must mean
	// the same on the phone as where it was checked before signing.
	_ "time/tzdata"
)

// RebootWindow is when new firmware may reboot the phone: each day from From to To (minutes
// after midnight, To before From for a window across midnight) in the facility's time zone.
// The zero RebootWindow (a policy without "firmware") is any time. Whatever the window, the
// phone reboots only when idle, never during a call; and firmware on trial that is not healthy
// in time reboots at once, so that the bootloader's count brings the good slot back.
type RebootWindow struct {
	From, To int // minutes after midnight, 0 to 1439
	Zone     *time.Location
}

// Any reports whether the window is any time.
func (w RebootWindow) Any() bool { return w.Zone == nil }

// Contains reports whether t is inside the window: From included, To not.
func (w RebootWindow) Contains(t time.Time) bool {
	if w.Any() {
		return true
	}
	l := t.In(w.Zone)
	m := l.Hour()*60 + l.Minute()
	if w.From <= w.To {
		return w.From <= m && m < w.To
	}
	return m >= w.From || m < w.To
}

// String is the window as the policy writes it, with its zone: "02:00-05:00 America/Chicago",
// or "any time".
func (w RebootWindow) String() string {
	if w.Any() {
		return "any time"
	}
	return fmt.Sprintf("%02d:%02d-%02d:%02d %s", w.From/60, w.From%60, w.To/60, w.To%60, w.Zone)
}

type fileFirmware struct {
	RebootWindow *string `json:"reboot_window"`
	TimeZone     *string `json:"time_zone"`
}

func buildFirmware(f *fileFirmware) (RebootWindow, error) {
	var w RebootWindow
	if f.RebootWindow == nil {
		return w, fieldErr("firmware.reboot_window", ErrMissing)
	}
	if f.TimeZone == nil {
		// A clock time without its zone is a different hour on every phone that reads it.
		return w, fieldErr("firmware.time_zone", ErrMissing)
	}
	from, to, ok := strings.Cut(*f.RebootWindow, "-")
	var err error
	if !ok {
		err = fmt.Errorf("%w: %q is not HH:MM-HH:MM", ErrValue, *f.RebootWindow)
	} else if w.From, err = clock(from); err == nil {
		w.To, err = clock(to)
	}
	if err == nil && w.From == w.To {
		err = fmt.Errorf("%w: %q is empty (to reboot at any time, leave out \"firmware\")", ErrValue, *f.RebootWindow)
	}
	if err != nil {
		return RebootWindow{}, fieldErr("firmware.reboot_window", err)
	}
	// "Local" is whatever zone the reader's machine is set to: not a facility's time zone.
	if *f.TimeZone == "" || *f.TimeZone == "Local" {
		return RebootWindow{}, fieldErr("firmware.time_zone", fmt.Errorf("%w: %q is not an IANA time zone", ErrValue, *f.TimeZone))
	}
	if w.Zone, err = time.LoadLocation(*f.TimeZone); err != nil {
		return RebootWindow{}, fieldErr("firmware.time_zone", fmt.Errorf("%w: %w", ErrValue, err))
	}
	return w, nil
}

// clock reads "HH:MM", 00:00 to 23:59.
func clock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || len(h) != 2 || len(m) != 2 || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("%w: %q is not a time of day HH:MM", ErrValue, s)
	}
	return hh*60 + mm, nil
}
