package vault

import (
	"context"
	"fmt"
	"path"

	"github.com/wallphone/wallphone/uplink"
)

// Listing is what the vault holds of one call: its sealed segments (how many, and their
// bytes), and whether its manifest and its call record are there.
type Listing struct {
	Call
	Segments int
	Bytes    int64
	Manifest bool
	Record   bool
}

// List lists the calls in the vault, in the order the store lists them (by facility, device,
// day and call id), optionally only those of one facility and device. It needs no key: it
// reads object names and sizes, never their contents.
func (v *Vault) List(ctx context.Context, facility, device string) ([]Listing, error) {
	prefix := ""
	if facility != "" {
		prefix = facility + "/"
		if device != "" {
			prefix += device + "/"
		}
	}
	var out []Listing
	index := map[Call]int{}
	for obj, err := range v.st.list(ctx, prefix) {
		key := obj.key
		if err != nil {
			return nil, fmt.Errorf("list the vault: %w", err)
		}
		c, name, ok := parseCallKey(key)
		if !ok {
			continue // purge requests, receipts, status objects
		}
		i, seen := index[c]
		if !seen {
			i = len(out)
			index[c] = i
			out = append(out, Listing{Call: c})
		}
		l := &out[i]
		switch name {
		case path.Base(uplink.ManifestKey(c.Facility, c.Device, c.ID)):
			l.Manifest = true
		case path.Base(uplink.RecordKey(c.Facility, c.Device, c.ID)):
			l.Record = true
		default:
			l.Segments++
			l.Bytes += obj.size
		}
	}
	return out, nil
}
