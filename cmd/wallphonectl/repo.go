package main

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wallphone/wallphone/audit"
	"github.com/wallphone/wallphone/backoffice/tufrepo"
	"github.com/wallphone/wallphone/dialplan"
	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/internal/atomicfile"
	"github.com/wallphone/wallphone/policy"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/updates"
)

const repoUsage = `
  wallphonectl keys tuf --out DIR [--role ROLE]... [--name NAME]
                                   make Ed25519 keys for TUF roles (root, targets, snapshot, timestamp):
                                   DIR/NAME.ROLE.pem (private, 0600) and DIR/NAME.ROLE.pub
  wallphonectl keys audit --out FILE
                                   make the facility's audit key (hex, 0600): installed on its phones, kept
                                   by its auditors to match numbers in audit logs
  wallphonectl repo init --repo DIR --root-key F... --targets-key F... --snapshot-key F --timestamp-key F
                         [--threshold ROLE=N]... [--expires ROLE=DURATION]...
                                   make a repository; every key file given is a private key (PEM)
  wallphonectl repo publish --repo DIR --targets-key F... --snapshot-key F --timestamp-key F
                         [--registry FILE.reg [--delta-from OLD.reg]...] [--policy FILE.json]... [--expires ROLE=DURATION]...
                                   publish a registry (with deltas from older versions) and facility policies
  wallphonectl repo timestamp --repo DIR --timestamp-key F [--expires timestamp=DURATION]
                                   re-sign the timestamp: run daily, or phones go stale when it expires
  wallphonectl repo root --repo DIR
                                   print the root metadata a technician installs on a phone (conf/root.json)
  wallphonectl repo delegate --repo DIR --role NAME --paths P,... --key PUB.pem... --threshold N [--expires DAYS]
                         --targets-key F... [--snapshot-key F --timestamp-key F]
                                   delegate the paths to a role (registry, policy-FACILITY, firmware) and its
                                   keys, or replace its keys (rotation); published once the role's metadata
                                   is signed by enough of its keys
  wallphonectl repo sign --repo DIR --role NAME --key KEY.pem...
                                   show a role's pending metadata (targets, hashes; a registry's entries and
                                   what it drops) and sign it: each keeper on their own machine
  wallphonectl repo commit --repo DIR --snapshot-key F --timestamp-key F [--targets-key F]
                                   publish every pending role whose threshold is met
  wallphonectl repo list --repo DIR
                                   the targets, their versions and sizes; every delegated role, its keys,
                                   threshold, expiry, version, and who has signed what is pending
  wallphonectl audit verify --log FILE [--device-key FILE [--current-key FILE]]
                                   check an audit log's chain (and signatures: --device-key is the key the
                                   log starts with, device.key or its public key; the key changes the log
                                   records are followed from there, and --current-key must be the one in
                                   force at the end); exit status 1 at the first fault
  wallphonectl audit match --key FILE [--country CC --area-code NNN] NUMBER...
                                   the keyed hash of each number, as the phones write it (number_mac)`

// multi is a repeatable flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %s: %v", errUsage, fs.Name(), err)
	}
	if fs.NArg() > 0 && fs.Name() != "audit match" {
		return fmt.Errorf("%w: %s: unexpected argument %q", errUsage, fs.Name(), fs.Arg(0))
	}
	return nil
}

var roleNames = []string{tufrepo.Root, tufrepo.Targets, tufrepo.Snapshot, tufrepo.Timestamp}

func keysTUF(args []string, stdout io.Writer) error {
	fs := newFlags("keys tuf")
	out := fs.String("out", "", "")
	name := fs.String("name", "key", "")
	var roles multi
	fs.Var(&roles, "role", "")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: keys tuf: --out is required", errUsage)
	}
	if len(roles) == 0 {
		roles = roleNames
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return err
	}
	for _, role := range roles {
		if !validKeyRole(role) {
			return fmt.Errorf("%w: keys tuf: role %q (want root, targets, snapshot, timestamp, registry, firmware or policy-FACILITY)", errUsage, role)
		}
		base := filepath.Join(*out, *name+"."+role)
		if _, err := os.Stat(base + ".pem"); err == nil {
			return fmt.Errorf("%s.pem exists: a key is never overwritten", base)
		}
		k, err := tufrepo.GenerateKey()
		if err != nil {
			return err
		}
		priv, err := tufrepo.MarshalPrivateKey(k)
		if err != nil {
			return err
		}
		pub, _ := tufrepo.MarshalPublicKey(k.Public().(ed25519.PublicKey))
		if err := atomicfile.Write(base+".pem", priv, 0o600); err != nil {
			return err
		}
		if err := atomicfile.Write(base+".pub", pub, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\t%s.pem\t%s\n", role, base, identity.Fingerprint(k.Public().(ed25519.PublicKey)))
	}
	return nil
}

func validRole(r string) bool {
	for _, n := range roleNames {
		if r == n {
			return true
		}
	}
	return false
}

// validKeyRole: keys tuf also makes the delegated roles' keys (a keeper's, a facility's, a
// release key).
func validKeyRole(r string) bool {
	if validRole(r) || r == tufrepo.RegistryRole || r == tufrepo.FirmwareRole {
		return true
	}
	f, ok := strings.CutPrefix(r, "policy-")
	return ok && f != "" && tufrepo.CheckRoleName(r) == nil
}

func keysAudit(args []string, stdout io.Writer) error {
	fs := newFlags("keys audit")
	out := fs.String("out", "", "")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: keys audit: --out is required", errUsage)
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("%s exists: a key is never overwritten", *out)
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return err
	}
	if err := atomicfile.Write(*out, []byte(hex.EncodeToString(k)+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "audit key written to %s: install it on the facility's phones (conf/audit.key)\n", *out)
	return nil
}

// roleFlags are the key and expiry flags the repo commands share.
type roleFlags struct {
	keys      map[string]*multi
	expires   multi
	threshold multi
}

func addRoleFlags(fs *flag.FlagSet, roles ...string) *roleFlags {
	rf := addKeyFlags(fs, roles...)
	fs.Var(&rf.expires, "expires", "")
	fs.Var(&rf.threshold, "threshold", "")
	return rf
}

// addKeyFlags adds only the --ROLE-key flags.
func addKeyFlags(fs *flag.FlagSet, roles ...string) *roleFlags {
	rf := &roleFlags{keys: map[string]*multi{}}
	for _, r := range roles {
		m := &multi{}
		rf.keys[r] = m
		fs.Var(m, r+"-key", "")
	}
	return rf
}

func (rf *roleFlags) signers() (tufrepo.Signers, error) {
	s := tufrepo.Signers{}
	for role, files := range rf.keys {
		for _, f := range *files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			k, err := tufrepo.ParsePrivateKey(b)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			s[role] = append(s[role], k)
		}
	}
	return s, nil
}

func (rf *roleFlags) expiry() (tufrepo.Expiry, error) {
	e := tufrepo.DefaultExpiry
	for _, kv := range rf.expires {
		role, v, ok := strings.Cut(kv, "=")
		d, err := parseDays(v)
		if !ok || err != nil || d <= 0 {
			return e, fmt.Errorf("%w: --expires %q: want ROLE=DURATION (e.g. timestamp=2d, root=365d)", errUsage, kv)
		}
		switch role {
		case tufrepo.Root:
			e.Root = d
		case tufrepo.Targets:
			e.Targets = d
		case tufrepo.Snapshot:
			e.Snapshot = d
		case tufrepo.Timestamp:
			e.Timestamp = d
		default:
			return e, fmt.Errorf("%w: --expires %q: unknown role", errUsage, kv)
		}
	}
	return e, nil
}

// parseDays is time.ParseDuration with whole days ("30d") too.
func parseDays(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		return time.Duration(n) * 24 * time.Hour, err
	}
	return time.ParseDuration(s)
}

func repo(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: repo: want init, publish, delegate, sign, commit, timestamp, root or list", errUsage)
	}
	fs := newFlags("repo " + args[0])
	dir := fs.String("repo", "", "")
	switch args[0] {
	case "init":
		rf := addRoleFlags(fs, roleNames...)
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		return repoInit(*dir, rf, stdout)
	case "publish":
		rf := addRoleFlags(fs, tufrepo.Targets, tufrepo.Snapshot, tufrepo.Timestamp)
		reg := fs.String("registry", "", "")
		var deltas, policies multi
		fs.Var(&deltas, "delta-from", "")
		fs.Var(&policies, "policy", "")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		return repoPublish(*dir, rf, *reg, deltas, policies, stdout)
	case "delegate":
		rf := addKeyFlags(fs, tufrepo.Targets, tufrepo.Snapshot, tufrepo.Timestamp)
		var d delegateFlags
		fs.StringVar(&d.role, "role", "", "")
		fs.StringVar(&d.paths, "paths", "", "")
		fs.Var(&d.keys, "key", "")
		fs.IntVar(&d.threshold, "threshold", 0, "")
		fs.StringVar(&d.expires, "expires", "", "")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		return repoDelegate(*dir, rf, d, stdout)
	case "sign":
		role := fs.String("role", "", "")
		var keys multi
		fs.Var(&keys, "key", "")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		return repoSign(*dir, *role, keys, stdout)
	case "commit":
		rf := addKeyFlags(fs, tufrepo.Targets, tufrepo.Snapshot, tufrepo.Timestamp)
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		r, s, e, err := openRepo(*dir, rf)
		if err != nil {
			return err
		}
		before := viewOf(r)
		if err := r.Commit(s, e, time.Now()); err != nil {
			return err
		}
		reportCommit(*dir, before, r, stdout)
		return nil
	case "timestamp":
		rf := addRoleFlags(fs, tufrepo.Timestamp)
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		r, s, e, err := openRepo(*dir, rf)
		if err != nil {
			return err
		}
		if err := r.Refresh(s, e, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "timestamp re-signed; phones stay fresh until %s\n", time.Now().Add(e.Timestamp).UTC().Format(time.RFC3339))
		return nil
	case "root", "list":
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if *dir == "" {
			return fmt.Errorf("%w: repo %s: --repo is required", errUsage, args[0])
		}
		r, err := tufrepo.Open(*dir)
		if err != nil {
			return err
		}
		if args[0] == "root" {
			b, err := r.RootJSON()
			if err != nil {
				return err
			}
			_, err = stdout.Write(append(b, '\n'))
			return err
		}
		fmt.Fprintf(stdout, "targets version %d\n", r.TargetsVersion())
		for _, n := range r.TargetNames() {
			t := r.Target(n)
			fmt.Fprintf(stdout, "%s\t%d bytes\t%s\n", n, t.Length, describeTarget(n, t))
		}
		listRoles(r, stdout)
		return nil
	}
	return fmt.Errorf("%w: repo %q: want init, publish, delegate, sign, commit, timestamp, root or list", errUsage, args[0])
}

func openRepo(dir string, rf *roleFlags) (*tufrepo.Repo, tufrepo.Signers, tufrepo.Expiry, error) {
	if dir == "" {
		return nil, nil, tufrepo.Expiry{}, fmt.Errorf("%w: --repo is required", errUsage)
	}
	e, err := rf.expiry()
	if err != nil {
		return nil, nil, e, err
	}
	s, err := rf.signers()
	if err != nil {
		return nil, nil, e, err
	}
	r, err := tufrepo.Open(dir)
	return r, s, e, err
}

func repoInit(dir string, rf *roleFlags, stdout io.Writer) error {
	if dir == "" {
		return fmt.Errorf("%w: repo init: --repo is required", errUsage)
	}
	e, err := rf.expiry()
	if err != nil {
		return err
	}
	s, err := rf.signers()
	if err != nil {
		return err
	}
	th := map[string]int{}
	for _, kv := range rf.threshold {
		role, v, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || !validRole(role) {
			return fmt.Errorf("%w: --threshold %q: want ROLE=N", errUsage, kv)
		}
		th[role] = n
	}
	keys := map[string]tufrepo.RoleKeys{}
	for _, role := range roleNames {
		if len(s[role]) == 0 {
			return fmt.Errorf("%w: repo init: --%s-key is required", errUsage, role)
		}
		rk := tufrepo.RoleKeys{Threshold: 1}
		if n, ok := th[role]; ok {
			rk.Threshold = n
		}
		for _, k := range s[role] {
			rk.Keys = append(rk.Keys, k.Public().(ed25519.PublicKey))
		}
		keys[role] = rk
	}
	if err := tufrepo.Init(dir, keys, s, e, time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "repository made in %s; serve the folder over HTTPS and install `wallphonectl repo root` on the phones\n", dir)
	return nil
}

func repoPublish(dir string, rf *roleFlags, regFile string, deltas, policies []string, stdout io.Writer) error {
	r, s, e, err := openRepo(dir, rf)
	if err != nil {
		return err
	}
	if regFile == "" && len(policies) == 0 {
		return fmt.Errorf("%w: repo publish: nothing to publish (--registry, --policy)", errUsage)
	}
	var msgs []string
	if regFile != "" {
		next, err := registry.Open(regFile)
		if err != nil {
			return err
		}
		defer next.Close()
		v := next.Version()
		if t := r.Target(updates.RegistryTarget); t != nil && t.Custom != nil {
			if cur := customVersion(*t.Custom); cur >= v {
				return fmt.Errorf("registry version %d: the repository already has version %d; versions only go up", v, cur)
			}
		}
		if err := checkOverPublished(r, next); err != nil {
			return err
		}
		for _, old := range deltas {
			if err := addDelta(r, old, next, &msgs); err != nil {
				return err
			}
		}
		// Deltas to older versions than the ones just made are dropped: they lead to a
		// registry that is no longer current.
		for _, n := range r.TargetNames() {
			if strings.HasPrefix(n, "registry-delta/") && !strings.HasSuffix(n, fmt.Sprintf("-%d.delta", v)) {
				r.RemoveTarget(n)
			}
		}
		if err := r.AddTarget(updates.RegistryTarget, regFile, updates.Custom{Version: v}); err != nil {
			return err
		}
		msgs = append(msgs, fmt.Sprintf("registry version %d (%d entries, %d bytes)", v, next.Len(), next.Size()))
	}
	for _, pf := range policies {
		p, err := policy.Load(pf)
		if err != nil {
			return err
		}
		name := updates.PolicyTarget(p.Facility)
		if t := r.Target(name); t != nil && t.Custom != nil && customVersion(*t.Custom) >= uint64(p.Version) {
			return fmt.Errorf("policy of %s, version %d: the repository already has version %d; versions only go up", p.Facility, p.Version, customVersion(*t.Custom))
		}
		if err := r.AddTarget(name, pf, updates.Custom{Version: uint64(p.Version)}); err != nil {
			return err
		}
		msgs = append(msgs, fmt.Sprintf("policy of %s version %d", p.Facility, p.Version))
	}
	before := viewOf(r)
	if err := r.Commit(s, e, time.Now()); err != nil {
		return err
	}
	sort.Strings(msgs)
	if before.roles == nil {
		fmt.Fprintf(stdout, "published (targets version %d):\n  %s\n", r.TargetsVersion(), strings.Join(msgs, "\n  "))
		return nil
	}
	fmt.Fprintf(stdout, "prepared:\n  %s\n", strings.Join(msgs, "\n  "))
	reportCommit(dir, before, r, stdout)
	return nil
}

// checkOverPublished refuses next if a phone holding the registry published now would
// refuse to install next over it. A registry built without --prev starts a new removal log,
// so the build cannot know what the phones hold; the repository does. The rule is the
// phone's own (registry.CheckRemovals, which package updates calls at install), so the back
// office and the phones cannot disagree about it.
func checkOverPublished(r *tufrepo.Repo, next *registry.Set) error {
	if r.Target(updates.RegistryTarget) == nil {
		return nil // the first registry: nothing to shrink from
	}
	p, err := r.TargetPath(updates.RegistryTarget)
	if err != nil {
		return err
	}
	cur, err := registry.Open(p)
	if err != nil {
		return fmt.Errorf("the published registry: %w", err)
	}
	defer cur.Close()
	if err := registry.CheckRemovals(cur, next); err != nil {
		return fmt.Errorf("phones holding version %d (the published registry) would refuse version %d: %w", cur.Version(), next.Version(), err)
	}
	return nil
}

func addDelta(r *tufrepo.Repo, oldFile string, next *registry.Set, msgs *[]string) error {
	old, err := registry.Open(oldFile)
	if err != nil {
		return err
	}
	defer old.Close()
	if err := registry.CheckRemovals(old, next); err != nil {
		return fmt.Errorf("phones holding version %d would refuse version %d: %w", old.Version(), next.Version(), err)
	}
	tmp, err := os.CreateTemp("", "wallphone-delta-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = registry.WriteDelta(tmp, old, next)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fi, err := os.Stat(tmp.Name())
	if err != nil {
		return err
	}
	if err := r.AddTarget(updates.DeltaTarget(old.Version(), next.Version()), tmp.Name(), updates.Custom{Version: next.Version()}); err != nil {
		return err
	}
	size := fi.Size()
	*msgs = append(*msgs, fmt.Sprintf("delta %d→%d (%d bytes, %.1f%% of the registry)", old.Version(), next.Version(), size, 100*float64(size)/float64(next.Size())))
	return nil
}

// readPublicKey reads an Ed25519 public key, or the public half of a private key file; nil
// for no file.
// readPublicKey reads an Ed25519 public key from a key file, or from the 64 hex digits a
// phone's console hello shows. A fingerprint (32 hex digits) names a key but cannot check its
// signatures: refused, with where the key is to be had.
func readPublicKey(file string) (ed25519.PublicKey, error) {
	if file == "" {
		return nil, nil
	}
	if b, err := hex.DecodeString(file); err == nil {
		switch len(b) {
		case ed25519.PublicKeySize:
			return ed25519.PublicKey(b), nil
		case 16:
			return nil, fmt.Errorf("%w: %s is a key's fingerprint, which cannot check signatures: give the public key (64 hex digits, `wallphonectl console hello` shows it) or its file", errUsage, file)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pub, err := tufrepo.ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return pub, nil
}

func customVersion(raw []byte) uint64 {
	var c updates.Custom
	_ = json.Unmarshal(raw, &c)
	return c.Version
}

func auditCmd(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: audit: want verify or match", errUsage)
	}
	switch args[0] {
	case "verify":
		fs := newFlags("audit verify")
		logFile := fs.String("log", "", "")
		devKey := fs.String("device-key", "", "")
		curKey := fs.String("current-key", "", "")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if *logFile == "" {
			return fmt.Errorf("%w: audit verify: --log is required", errUsage)
		}
		if *curKey != "" && *devKey == "" {
			// The current key alone cannot vouch for the keys before it (README, Audit log).
			return fmt.Errorf("%w: audit verify: --current-key needs --device-key, the key the log starts with", errUsage)
		}
		pub, err := readPublicKey(*devKey)
		if err != nil {
			return err
		}
		cur, err := readPublicKey(*curKey)
		if err != nil {
			return err
		}
		f, err := os.Open(*logFile)
		if err != nil {
			return err
		}
		defer f.Close()
		sum, err := audit.Verify(bufio.NewReader(f), pub)
		if err != nil {
			hint := ""
			if errors.Is(err, audit.ErrSignature) && sum.Entries == 0 {
				hint = "; --device-key must be the key the log starts with (the phone's first), not a later one"
			}
			return fmt.Errorf("%s: %w (the %d entries before it hold)%s", *logFile, err, sum.Entries, hint)
		}
		for _, c := range sum.KeyChanges {
			fmt.Fprintf(stdout, "%s: entry %d (%s): device key changed to %s\n", *logFile, c.Seq, c.Time.Format(time.RFC3339), identity.Fingerprint(c.Key))
		}
		if cur != nil && !cur.Equal(sum.Key) {
			return fmt.Errorf("%s: the log ends under device key %s, not %s (--current-key): %w", *logFile, identity.Fingerprint(sum.Key), identity.Fingerprint(cur), audit.ErrSignature)
		}
		signed := "chain only (give --device-key to check signatures)"
		if pub != nil {
			signed = "chain and signatures of device " + identity.Fingerprint(pub)
			if len(sum.KeyChanges) > 0 {
				signed += " and the keys it handed over to, last " + identity.Fingerprint(sum.Key)
			}
		}
		fmt.Fprintf(stdout, "%s: %d entries, %s to %s, head %s; %s verified\n", *logFile, sum.Entries,
			sum.First.Format(time.RFC3339), sum.Last.Format(time.RFC3339), sum.Head, signed)
		return nil
	case "match":
		fs := newFlags("audit match")
		keyFile := fs.String("key", "", "")
		country := fs.String("country", "US", "")
		area := fs.String("area-code", "", "")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if *keyFile == "" || fs.NArg() == 0 {
			return fmt.Errorf("%w: audit match: --key and at least one number are required", errUsage)
		}
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			return err
		}
		key, err := audit.ParseKey(b)
		if err != nil {
			return err
		}
		plan := dialplan.Plan{Country: *country, AreaCode: *area}
		if err := plan.Validate(); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		for _, n := range fs.Args() {
			e, err := plan.Written(n)
			if err != nil {
				fmt.Fprintf(stdout, "%s\t-\tinvalid: %v\n", n, err)
				continue
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", n, e, audit.NumberMAC(key, e))
		}
		return nil
	}
	return fmt.Errorf("%w: audit %q: want verify or match", errUsage, args[0])
}
