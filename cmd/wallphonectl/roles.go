package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/wallphone/wallphone/backoffice/tufrepo"
	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/updates"
)

// Who signs what (README): repo delegate, repo sign, repo commit and the roles in repo list.

type delegateFlags struct {
	role, paths, expires string
	keys                 multi
	threshold            int
}

func repoDelegate(dir string, rf *roleFlags, d delegateFlags, stdout io.Writer) error {
	if d.role == "" || d.paths == "" || len(d.keys) == 0 || d.threshold == 0 {
		return fmt.Errorf("%w: repo delegate: --role, --paths, --key and --threshold are required", errUsage)
	}
	if err := tufrepo.CheckRoleName(d.role); err != nil {
		return fmt.Errorf("%w: repo delegate: %v", errUsage, err)
	}
	del := tufrepo.Delegation{Name: d.role, Paths: strings.Split(d.paths, ","), Threshold: d.threshold}
	if d.expires != "" {
		days := d.expires
		if _, err := strconv.Atoi(days); err == nil {
			days += "d" // a bare number is days, as the usage says
		}
		v, err := parseDays(days)
		if err != nil || v <= 0 {
			return fmt.Errorf("%w: repo delegate: --expires %q: want days (90, 90d)", errUsage, d.expires)
		}
		del.Expires = v
	}
	for _, f := range d.keys {
		pub, err := readPublicKey(f)
		if err != nil {
			return err
		}
		del.Keys = append(del.Keys, pub)
	}
	r, s, e, err := openRepo(dir, rf)
	if err != nil {
		return err
	}
	before := viewOf(r)
	if err := r.Delegate(del, s, e, time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "role %s: %s, %d of %d keys:\n", d.role, strings.Join(del.Paths, ","), del.Threshold, len(del.Keys))
	for _, k := range del.Keys {
		fmt.Fprintf(stdout, "  key %s\n", identity.Fingerprint(k))
	}
	reportCommit(dir, before, r, stdout)
	return nil
}

// snapshotView is what was published before a command, for reportCommit.
type snapshotView struct {
	targets int64
	roles   []tufrepo.RoleInfo
}

func viewOf(r *tufrepo.Repo) snapshotView { return snapshotView{r.TargetsVersion(), r.Roles()} }

// reportCommit says what a command published and what still waits for whose signatures.
func reportCommit(dir string, before snapshotView, r *tufrepo.Repo, stdout io.Writer) {
	was := map[string]int64{}
	for _, ri := range before.roles {
		was[ri.Name] = ri.Version
	}
	published := false
	if v := r.TargetsVersion(); v > before.targets {
		fmt.Fprintf(stdout, "published targets version %d (the delegations)\n", v)
		published = true
	}
	for _, ri := range r.Roles() {
		if ri.Version > was[ri.Name] {
			fmt.Fprintf(stdout, "published %s version %d\n", ri.Name, ri.Version)
			published = true
		}
		p := ri.Pending
		if p == nil {
			continue
		}
		if len(p.SignedBy) >= ri.Threshold {
			fmt.Fprintf(stdout, "pending %s version %d: signed by %d of the %d needed; the online keys publish it: wallphonectl repo commit --repo %s --snapshot-key F --timestamp-key F\n",
				ri.Name, p.Version, len(p.SignedBy), ri.Threshold, dir)
			continue
		}
		fmt.Fprintf(stdout, "pending %s version %d: signed by %d of the %d needed; each signer runs: wallphonectl repo sign --repo %s --role %s --key KEY.pem\n",
			ri.Name, p.Version, len(p.SignedBy), ri.Threshold, dir, ri.Name)
	}
	if r.DelegationPending() {
		fmt.Fprintln(stdout, "pending targets: the new delegations are published with the first metadata of each role that its keys have signed")
	} else if !published {
		fmt.Fprintln(stdout, "nothing published")
	}
}

func repoSign(dir, role string, keyFiles []string, stdout io.Writer) error {
	if dir == "" || role == "" || len(keyFiles) == 0 {
		return fmt.Errorf("%w: repo sign: --repo, --role and --key are required", errUsage)
	}
	var keys []ed25519.PrivateKey
	for _, f := range keyFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		k, err := tufrepo.ParsePrivateKey(b)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		keys = append(keys, k)
	}
	r, err := tufrepo.Open(dir)
	if err != nil {
		return err
	}
	var ri *tufrepo.RoleInfo
	for _, x := range r.Roles() {
		if x.Name == role {
			ri = &x
		}
	}
	if ri == nil {
		return fmt.Errorf("%w: %s", tufrepo.ErrNoRole, role)
	}
	if ri.Pending == nil {
		return fmt.Errorf("%w: %s", tufrepo.ErrNotPending, role)
	}
	// What is signed is shown first, whole: a keeper signs only what they have read.
	p := ri.Pending
	fmt.Fprintf(stdout, "%s version %d (published: version %d), valid until %s:\n", role, p.Version, ri.Version, p.Expires.Format(time.RFC3339))
	printTargets(stdout, p.Targets, ri.Published)
	if p.Targets[updates.RegistryTarget] != nil {
		if err := describeRegistry(r, role, stdout); err != nil {
			return err
		}
	}
	if err := r.Sign(role, keys); err != nil {
		return err
	}
	for _, k := range keys {
		fmt.Fprintf(stdout, "signed with key %s\n", identity.Fingerprint(k.Public().(ed25519.PublicKey)))
	}
	reportCommit(dir, viewOf(r), r, stdout)
	return nil
}

// printTargets lists targets with lengths and hashes, marking what changed from published.
func printTargets(w io.Writer, targets, published map[string]*metadata.TargetFiles) {
	names := make([]string, 0, len(targets))
	for n := range targets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := targets[n]
		mark := "new"
		if old := published[n]; old != nil && old.Equal(*t) {
			mark = "unchanged"
		} else if old != nil {
			mark = "changed"
		}
		algs := make([]string, 0, len(t.Hashes))
		for a := range t.Hashes {
			algs = append(algs, a)
		}
		sort.Strings(algs)
		var hs []string
		for _, a := range algs {
			hs = append(hs, a+":"+hex.EncodeToString(t.Hashes[a]))
		}
		custom := ""
		if t.Custom != nil {
			var b bytes.Buffer
			if json.Compact(&b, *t.Custom) == nil {
				custom = "\t" + b.String()
			}
		}
		fmt.Fprintf(w, "  %s\t%d bytes\t%s\t%s%s\n", n, t.Length, strings.Join(hs, " "), mark, custom)
	}
	for n := range published {
		if targets[n] == nil {
			fmt.Fprintf(w, "  %s\tremoved from the role\n", n)
		}
	}
}

// describeRegistry shows a pending registry against the published one: its entries, what
// it drops (each entry a keeper is asked to let go of), and whether phones holding the
// published one would take it.
func describeRegistry(r *tufrepo.Repo, role string, w io.Writer) error {
	p, err := r.PendingTargetPath(role, updates.RegistryTarget)
	if err != nil {
		return err
	}
	next, err := registry.Open(p)
	if err != nil {
		return fmt.Errorf("the pending registry: %w", err)
	}
	defer next.Close()
	fmt.Fprintf(w, "registry version %d: %d entries\n", next.Version(), next.Len())
	if r.Target(updates.RegistryTarget) == nil {
		fmt.Fprintln(w, "no registry is published yet: it removes nothing")
		return nil
	}
	cp, err := r.TargetPath(updates.RegistryTarget)
	if err != nil {
		return err
	}
	cur, err := registry.Open(cp)
	if err != nil {
		return fmt.Errorf("the published registry: %w", err)
	}
	defer cur.Close()
	dropped := registry.Dropped(cur, next)
	fmt.Fprintf(w, "published registry version %d: %d entries; this one removes %d", cur.Version(), cur.Len(), len(dropped))
	if len(dropped) > 0 {
		fmt.Fprintf(w, ": %s", strings.Join(dropped, ", "))
	}
	fmt.Fprintln(w)
	if err := registry.CheckRemovals(cur, next); err != nil {
		return fmt.Errorf("phones holding version %d (the published registry) would refuse version %d: %w; do not sign it", cur.Version(), next.Version(), err)
	}
	return nil
}

// listRoles is the roles' part of repo list.
func listRoles(r *tufrepo.Repo, w io.Writer) {
	for _, ri := range r.Roles() {
		exp := "never published"
		if ri.Version > 0 {
			exp = "expires " + ri.Expires.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "role %s\t%s\tthreshold %d of %d\tversion %d\t%s\n", ri.Name, strings.Join(ri.Paths, ","), ri.Threshold, len(ri.Keys), ri.Version, exp)
		signed := map[string]bool{}
		if ri.Pending != nil {
			for _, k := range ri.Pending.SignedBy {
				signed[identity.Fingerprint(k)] = true
			}
		}
		for _, k := range ri.Keys {
			fp, mark := identity.Fingerprint(k), ""
			if ri.Pending != nil {
				mark = "\tnot signed"
				if signed[fp] {
					mark = "\tsigned"
				}
			}
			fmt.Fprintf(w, "  key %s%s\n", fp, mark)
		}
		if p := ri.Pending; p != nil {
			fmt.Fprintf(w, "  pending version %d\tsigned by %d of the %d needed\texpires %s\n", p.Version, len(p.SignedBy), ri.Threshold, p.Expires.Format(time.RFC3339))
		}
	}
	if r.DelegationPending() {
		fmt.Fprintln(w, "pending targets: new delegations, published once their roles are signed by their keys")
	}
}
