package spool

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Oldest returns up to max committed segments and manifests, oldest call first (call ids
// begin with a UTC timestamp), each call's segments in seq order and then its manifest, and
// skipping those for which skip returns true (nil skips none). It reads the index with two
// cursors and stops at max, so that its memory does not grow with the backlog: the uplink
// calls it again after removing what it uploaded.
func (s *Spool) Oldest(max int, skip func(Entry) bool) ([]Entry, error) {
	var es []Entry
	segPrefix, manPrefix := []byte(segmentsDir+"/"), []byte(manifestsDir+"/")
	err := s.view(func(b *bolt.Bucket) error {
		sc, mc := b.Cursor(), b.Cursor()
		sk, sv := sc.Seek(segPrefix)
		mk, mv := mc.Seek(manPrefix)
		next := func(c *bolt.Cursor, prefix []byte) ([]byte, []byte) {
			k, v := c.Next()
			if k != nil && !bytes.HasPrefix(k, prefix) {
				return nil, nil
			}
			return k, v
		}
		if sk != nil && !bytes.HasPrefix(sk, segPrefix) {
			sk = nil
		}
		if mk != nil && !bytes.HasPrefix(mk, manPrefix) {
			mk = nil
		}
		add := func(k, v []byte) error {
			n, ok := parseRel(string(k))
			if !ok {
				return nil
			}
			r, err := decodeRecord(v)
			if err != nil {
				return fmt.Errorf("spool: index entry of %s: %w", s.path(n), err)
			}
			if e := r.entry(n); !r.removing && (skip == nil || !skip(e)) {
				es = append(es, e)
			}
			return nil
		}
		for len(es) < max && (sk != nil || mk != nil) {
			var sCall, mCall string
			if sk != nil {
				n, _ := parseRel(string(sk))
				sCall = n.call
			}
			if mk != nil {
				n, _ := parseRel(string(mk))
				mCall = n.call
			}
			// A call's segments come before its manifest, so that a vault holding a
			// manifest holds the segments it lists.
			if sk != nil && (mk == nil || sCall <= mCall) {
				if err := add(sk, sv); err != nil {
					return err
				}
				sk, sv = next(sc, segPrefix)
				continue
			}
			if err := add(mk, mv); err != nil {
				return err
			}
			mk, mv = next(mc, manPrefix)
		}
		return nil
	})
	return es, err
}
