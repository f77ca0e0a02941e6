package tufclient

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"

	"github.com/wallphone/wallphone/internal/atomicfile"
)

// Targets lists, sorted by name, every target whose name starts with prefix that the
// metadata trusted by the last successful Refresh vouches for, each as Target(name) would
// describe it (the firmware releases under "firmware/", for one).
//
// It walks the delegations as Target's lookup does (depth first, in the order each role
// lists its delegations, at most MaxRoles delegated roles) and loads every delegated role
// that a name under prefix could reach: one whose delegation paths could match such a name.
// It keeps a name only where TUF's lookup of that name finds it: in a role whose delegation
// paths match the name, and that no role the lookup consults earlier lists too (the first
// wins; a terminating delegation ends the lookup of the names it matches). A name listed
// only by roles not delegated it is left out.
//
// It refuses the whole list, rather than leave a name out, when Target would refuse a name
// it lists, or when the walk for prefix goes wrong:
//   - a *RoleError naming a delegated role that a name under prefix could reach and that
//     does not verify, or whose name is unsafe (ErrRoleName): its Target is prefix+"*";
//   - ErrTopLevelTarget, with TopLevelOnlyDelegates, when the top-level targets role lists
//     a name under prefix itself: what the vendor's key signs alone is a repository gone
//     wrong that the phone reports, not one release among others to pass over;
//   - ErrDelegationLoop when a delegation that could match a name under prefix leads back
//     to a role on its own path; ErrTooManyRoles when the walk would take more than MaxRoles
//     delegated roles;
//   - ErrNoHash, or a hash of the wrong size, for a target it would return.
//
// No role listing a name under prefix (no delegation for it, say) is an empty list and no
// error. A role is loaded when a delegation could match a name under prefix, even one that an
// earlier terminating delegation of another role turns out to shadow for every name it lists:
// the walk errs towards loading, and so towards refusing.
func (c *Client) Targets(prefix string) ([]Target, error) {
	if c.up == nil {
		return nil, errors.New("tufclient: no successful refresh yet")
	}
	ts := c.up.GetTrustedMetadataSet()
	roles, err := c.loadRoles(&ts, prefix)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, role := range roles {
		for name := range ts.Targets[role].Signed.Targets {
			if strings.HasPrefix(name, prefix) {
				names[name] = true
			}
		}
	}
	var out []Target
	for _, name := range slices.Sorted(maps.Keys(names)) {
		w := replay(ts.Targets, name)
		switch {
		case w.stopped:
			// The lookup of a name under prefix reaches a role loadRoles did not load.
			return nil, fmt.Errorf("tufclient: %s: delegated role %s (delegated by %s) not loaded", name, w.pending, w.parent)
		case w.signer == "":
			continue // listed only by roles not delegated the name
		}
		t, err := c.describe(name, ts.Targets[w.signer].Signed.Targets[name], w)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// edge is one delegation as the walk for a prefix follows it.
type edge struct {
	role        string
	terminating bool
	paths       []string // path patterns; none for hashed bins, which any name may fall in
	hashed      bool
}

// edges are the delegations of a role, in order (go-tuf's: a succinct delegation counts only
// when there is no list of roles; each of its bins is terminating).
func edges(d *metadata.Delegations) []edge {
	var out []edge
	switch {
	case d == nil:
	case d.Roles != nil:
		for _, r := range d.Roles {
			out = append(out, edge{role: r.Name, terminating: r.Terminating, paths: r.Paths,
				hashed: len(r.Paths) == 0 && len(r.PathHashPrefixes) > 0})
		}
	case d.SuccinctRoles != nil:
		for _, r := range d.SuccinctRoles.GetRoles() {
			out = append(out, edge{role: r, terminating: true, hashed: true})
		}
	}
	return out
}

// loadRoles walks the delegations from the top-level targets role as the lookup of a name
// under prefix could, loads each delegated role into ts on the way, and returns the roles
// visited, in the walk's order.
func (c *Client) loadRoles(ts *trustedmetadata.TrustedMetadata, prefix string) ([]string, error) {
	type visit struct {
		role string
		path []string // delegators, top-level first
	}
	stack := []visit{{role: metadata.TARGETS}}
	visited := map[string]bool{}
	var order []string
	for len(visited) <= MaxRoles && len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if visited[v.role] {
			continue
		}
		md, ok := ts.Targets[v.role]
		if !ok {
			parent := v.path[len(v.path)-1]
			var err error
			if md, err = c.loadRole(ts, v.role, parent); err != nil {
				return nil, &RoleError{Target: prefix + "*", Role: v.role, Delegator: parent, Err: err}
			}
		}
		visited[v.role] = true
		order = append(order, v.role)
		path := append(slices.Clip(v.path), v.role)
		var children []visit
		var closed []string // the paths of this role's terminating delegations so far
		for _, e := range edges(md.Signed.Delegations) {
			if !e.mayMatch(prefix) || e.shadowed(closed) {
				continue
			}
			if slices.Contains(path, e.role) {
				return nil, fmt.Errorf("%w: %s*: %s -> %s", ErrDelegationLoop, prefix, strings.Join(path, " -> "), e.role)
			}
			children = append(children, visit{role: e.role, path: path})
			if e.terminating {
				closed = append(closed, e.paths...)
			}
		}
		slices.Reverse(children)
		stack = append(stack, children...)
	}
	if slices.ContainsFunc(stack, func(v visit) bool { return !visited[v.role] }) {
		return nil, fmt.Errorf("%w: %s*: more than %d", ErrTooManyRoles, prefix, MaxRoles)
	}
	return order, nil
}

// mayMatch reports whether the delegation could match a name that starts with prefix. In
// doubt (a "?", "[" or "\" in the pattern's segment where prefix ends), it could.
func (e edge) mayMatch(prefix string) bool {
	if e.hashed {
		return true
	}
	pre := strings.Split(prefix, "/")
	last := len(pre) - 1
	for _, pattern := range e.paths {
		pat := strings.Split(pattern, "/")
		if len(pat) <= last || !segmentsMatch(pat[:last], pre[:last]) {
			continue
		}
		p, rest := pat[last], pre[last]
		if i := strings.IndexAny(p, `*?[\`); i >= 0 {
			if strings.HasPrefix(p[:i], rest) || strings.HasPrefix(rest, p[:i]) {
				return true
			}
		} else if strings.HasPrefix(p, rest) {
			return true
		}
	}
	return false
}

// segmentsMatch reports whether each name segment matches its pattern, as go-tuf matches
// a target path against a delegation's.
func segmentsMatch(patterns, segments []string) bool {
	for i, p := range patterns {
		if ok, _ := filepath.Match(p, segments[i]); !ok {
			return false
		}
	}
	return true
}

// shadowed reports whether every name the delegation could match is matched by one of the
// patterns of earlier terminating delegations of the same role, which end its lookup: a
// pattern covers another with as many segments when each of its segments is the other's
// or "*".
func (e edge) shadowed(closed []string) bool {
	if e.hashed || len(e.paths) == 0 {
		return false
	}
	for _, p := range e.paths {
		if !slices.ContainsFunc(closed, func(t string) bool { return covers(t, p) }) {
			return false
		}
	}
	return true
}

func covers(pattern, other string) bool {
	a, b := strings.Split(pattern, "/"), strings.Split(other, "/")
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && a[i] != "*" {
			return false
		}
	}
	return true
}

// loadRole verifies the metadata of role, delegated by parent, into ts: the copy in Dir if
// it is the version the snapshot names, else the repository's, which it then keeps in Dir.
// It is go-tuf's own loading of a delegated role, which go-tuf does only on its way to one
// target's name and does not export: the checks are go-tuf's (UpdateDelegatedTargets:
// the snapshot's version and hashes, the delegator's keys and threshold, expiry). ts is the
// updater's trusted set (a copy that shares its map of targets roles), so a later Target
// finds the role loaded.
func (c *Client) loadRole(ts *trustedmetadata.TrustedMetadata, role, parent string) (*metadata.Metadata[metadata.TargetsType], error) {
	if err := CheckRoleName(role); err != nil {
		return nil, err
	}
	file := filepath.Join(c.o.Dir, url.PathEscape(role)+".json")
	if b, err := os.ReadFile(file); err == nil {
		if md, err := ts.UpdateDelegatedTargets(b, role, parent); err == nil {
			return md, nil
		}
	}
	meta, ok := ts.Snapshot.Signed.Meta[role+".json"]
	if !ok {
		return nil, &metadata.ErrRepository{Msg: "not in the snapshot"}
	}
	length := meta.Length
	if length == 0 {
		length = c.maxRoleLength
	}
	name := url.PathEscape(role) + ".json"
	if c.consistent {
		name = fmt.Sprintf("%d.%s", meta.Version, name)
	}
	b, err := c.fetcher.DownloadFile(c.o.MetadataURL+"/"+name, length, 0)
	if err != nil {
		return nil, err
	}
	md, err := ts.UpdateDelegatedTargets(b, role, parent)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(file, b, 0o600); err != nil {
		return nil, err
	}
	return md, nil
}
