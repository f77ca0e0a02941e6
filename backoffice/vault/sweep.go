package vault

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/purge"
	"github.com/wallphone/wallphone/recording"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/uplink"
)

// The vault sweep is destroy on discovery (promise 5) for calls that have left the phone: a
// phone sweeps only the calls it still holds a record of, so after a registry release the back
// office opens every call's sealed manifest in the vault and destroys the ones whose number the
// registry now names.

// ErrUnreadable is wrapped by the error of a call the sweep could not check: its manifest
// does not open with the identities given, or does not verify, or is another call's. Such a
// call is left as it is.
var ErrUnreadable = errors.New("call not checked")

// FoundBySweep is a sweep receipt's FoundBy.
const FoundBySweep = "vault-sweep"

// maxManifest bounds a manifest read from the vault: a few hundred bytes a segment.
const maxManifest = 16 << 20

// Registry is what the sweep needs of a registry (a *registry.Set).
type Registry interface {
	Lookup(e164 string) (registry.Entry, bool)
	Version() uint64
}

// SweepOptions say what Sweep checks against and whether it acts.
type SweepOptions struct {
	// Identities open the manifests: the investigators' age identities.
	Identities []age.Identity
	Registry   Registry
	// DryRun finds the privileged calls and deletes and writes nothing.
	DryRun bool
	// Now stamps the receipts (nil: time.Now).
	Now func() time.Time
}

// Call names a call in the vault.
type Call struct {
	Facility, Device, ID string
}

func (c Call) String() string { return path.Join(c.Facility, c.Device, c.ID) }

// SweepOutcome is one call the sweep found privileged, or could not check. It never holds
// the number called.
type SweepOutcome struct {
	Call Call
	// Privileged: the registry names the number. The call was destroyed when Receipt is set;
	// on a dry run, or when Err is set, it was not.
	Privileged bool
	Receipt    *Receipt
	// Err wraps ErrUnreadable for a call not checked, or says why a privileged call's
	// destruction failed (a run again finishes it).
	Err error
}

// SweepSummary counts what one sweep saw.
type SweepSummary struct {
	// Checked: calls whose manifest opened and verified. Privileged: of those, the ones the
	// registry names. Destroyed: of those, the ones whose objects were deleted (Deleted of them).
	Checked, Privileged, Destroyed, Deleted int
	// Unreadable: calls with a manifest that could not be checked. NoManifest: calls with
	// segments but no manifest (still on their way from the phone, or damaged), which cannot
	// be checked either. Failed: calls whose manifest could not be read from the store, or
	// privileged calls whose destruction failed.
	Unreadable, NoManifest, Failed int
}

// unreadable is a call's ErrUnreadable. Its text is a fixed reason, never the error it
// wraps, which might quote what a manifest holds.
type unreadable struct {
	reason string
	err    error
}

func (e *unreadable) Error() string   { return ErrUnreadable.Error() + ": " + e.reason }
func (e *unreadable) Unwrap() []error { return []error{ErrUnreadable, e.err} }

// Sweep checks every call in the vault against o.Registry and destroys the privileged ones
// as Purge does, with a receipt each (FoundBy FoundBySweep), calling report for each call
// found privileged or not checked. It is idempotent: a call destroyed before is no longer in
// the vault, and one whose destruction was cut short still has its manifest and is finished.
// Its own error is for the vault failing (listing); a call is an outcome and the rest go on.
func (v *Vault) Sweep(ctx context.Context, o SweepOptions, report func(SweepOutcome)) (SweepSummary, error) {
	var sum SweepSummary
	if o.Registry == nil || len(o.Identities) == 0 {
		return sum, errors.New("vault: a sweep needs a registry and at least one identity")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	// Listed first, then acted on, as for Purge.
	calls, err := v.List(ctx, "", "")
	if err != nil {
		return sum, err
	}
	for _, l := range calls {
		c := l.Call
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		switch {
		case l.Manifest:
		case l.Segments > 0:
			sum.NoManifest++
			report(SweepOutcome{Call: c, Err: &unreadable{"segments but no manifest", recording.ErrFormat}})
			continue
		default:
			// A call record alone: a call that was not recorded. Its record is the phone's
			// business (promise 1 kept the number out of any recording).
			continue
		}
		out := v.sweepOne(ctx, c, o)
		switch {
		case errors.Is(out.Err, ErrUnreadable):
			sum.Unreadable++
		case out.Err != nil && !out.Privileged:
			sum.Failed++ // the store failed: the call is not checked, and a run again will
		case !out.Privileged:
			sum.Checked++
			continue
		default:
			sum.Checked++
			sum.Privileged++
			if out.Err != nil {
				sum.Failed++
			} else if out.Receipt != nil {
				sum.Destroyed++
				sum.Deleted += len(out.Receipt.Deleted)
			}
		}
		report(out)
	}
	return sum, nil
}

func (v *Vault) sweepOne(ctx context.Context, c Call, o SweepOptions) SweepOutcome {
	out := SweepOutcome{Call: c}
	mkey := uplink.ManifestKey(c.Facility, c.Device, c.ID)
	sealed, err := v.get(ctx, mkey, maxManifest)
	if err != nil {
		out.Err = fmt.Errorf("read %s: %w", mkey, err)
		return out
	}
	plain, err := recording.Decrypt(sealed, o.Identities...)
	if err != nil {
		out.Err = &unreadable{manifestReason(err), err}
		return out
	}
	m, key, err := recording.OpenManifest(plain)
	clear(plain)
	if err != nil {
		out.Err = &unreadable{manifestReason(err), err}
		return out
	}
	if m.CallID != c.ID || m.DeviceID != c.Device {
		// Its objects are not the call it speaks of: a human looks before anything goes.
		out.Err = &unreadable{"the manifest is of another call or device than its key names", recording.ErrFormat}
		return out
	}
	if _, ok := o.Registry.Lookup(m.Number); !ok {
		return out
	}
	out.Privileged = true
	if o.DryRun {
		return out
	}
	rc := &Receipt{Format: ReceiptFormat, FoundBy: FoundBySweep, Facility: c.Facility, DeviceID: c.Device,
		DeviceKey: identity.Fingerprint(key), CallID: c.ID, Reason: purge.ReasonPrivileged, RegistryVersion: o.Registry.Version()}
	if err := v.destroy(ctx, rc, mkey, o.Now); err != nil {
		out.Err = err
		return out
	}
	out.Receipt = rc
	return out
}

// manifestReason says in a few fixed words why a manifest could not be checked.
func manifestReason(err error) string {
	switch {
	case errors.Is(err, recording.ErrNoIdentity):
		return "its manifest is sealed to other recipients: none of the identities opens it"
	case errors.Is(err, recording.ErrTampered):
		return "its manifest is damaged or altered"
	case errors.Is(err, recording.ErrSignature):
		return "its manifest's signature does not verify"
	case errors.Is(err, recording.ErrFormat):
		return "its manifest is not a wallphone manifest"
	}
	return "its manifest could not be opened"
}

// parseCallKey reads the key of an object of a call (uplink.CallPrefix + name); ok is false
// for any other key, and for one that uplink's key functions would not make.
func parseCallKey(key string) (Call, string, bool) {
	for _, p := range []string{uplink.PurgePrefix, uplink.ReceiptPrefix, uplink.StatusPrefix} {
		if strings.HasPrefix(key, p) {
			return Call{}, "", false
		}
	}
	parts := strings.Split(key, "/")
	if len(parts) != 5 {
		return Call{}, "", false
	}
	c := Call{Facility: parts[0], Device: parts[1], ID: parts[3]}
	name := parts[4]
	if name == "" || uplink.CallPrefix(c.Facility, c.Device, c.ID)+name != key {
		return Call{}, "", false
	}
	return c, name, true
}
