// Package demo makes a demo facility for the simulated phone: it plays the vendor (a TUF
// repository carrying the demo registry and the demo policy, with every key that signs it),
// the facility (the recording identities that open what the phone seals, the audit key, a
// provisioning key and a technician's certificate for the console) and the technician (the
// enrolment a phone installs in its conf/). wallphonectl demo init writes one; make run uses
// it. It is the back office's: the phone binary never signs anything, so it must not link
// this package.
//
// A demo facility's directory:
//
//	tuf/<role>.pem                    the vendor's role keys (root, targets, snapshot, timestamp)
//	tuf/keeper-{1,2,3}.pem            the registry's three demo keepers (any two sign)
//	tuf/policy-<facility>.pem         the facility's key for its policy
//	tuf/firmware.pem                  the vendor's release key
//	repo/                             the repository the phones fetch from (metadata/, targets/)
//	registry-<N>.reg, policy.json     what was published
//	investigations.key, escrow.key    the recording identities (age); the policy seals to both
//	audit.key                         the facility's key for the audit log's keyed hashes
//	provisioning.key, provisioning.pub the facility's console signing key, and the phones' trust file
//	technician.key, technician.cert   a technician's key and certificate (a year)
//	enrol/                            what a technician installs in a phone's conf/
package demo

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/wallphone/wallphone/backoffice/tufrepo"
	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/internal/atomicfile"
	"github.com/wallphone/wallphone/pin"
	"github.com/wallphone/wallphone/policy"
	"github.com/wallphone/wallphone/provisioning"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/tufclient"
	"github.com/wallphone/wallphone/updates"
)

// Facility is the demo facility's id.
const Facility = policy.DemoFacility

// Expiry keeps the demo repository valid for as long as anyone plays with it: nothing
// re-signs its timestamp. A vendor's repository uses tufrepo.DefaultExpiry.
var Expiry = tufrepo.Expiry{Root: 10 * 365 * 24 * time.Hour, Targets: 5 * 365 * 24 * time.Hour,
	Snapshot: 5 * 365 * 24 * time.Hour, Timestamp: 5 * 365 * 24 * time.Hour, Delegated: 5 * 365 * 24 * time.Hour}

// EnrolDir is the directory, in a demo facility, of what a technician installs in a phone's
// conf/ (provisioning.EnrolmentFiles); the simulated phone installs it from there at its
// first run.
const EnrolDir = "enrol"

// Init makes the demo facility in dir, each part that is not there yet, and reports what it
// made on log. A complete facility is left as it is.
func Init(dir string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("demo facility: %w", err)
	}
	recipients, err := identities(dir, log)
	if err != nil {
		return err
	}
	if err := provisioningKeys(dir, log); err != nil {
		return err
	}
	repoDir := filepath.Join(dir, "repo")
	if !exists(filepath.Join(repoDir, "metadata", "timestamp.json")) {
		if err := repository(dir, recipients); err != nil {
			return fmt.Errorf("demo repository: %w", err)
		}
		log.Info("wrote demo repository (the vendor's side, keys included)", "event", "demo_written", "dir", repoDir)
	}
	if exists(filepath.Join(dir, EnrolDir, provisioning.FacilityFile)) {
		return nil
	}
	return enrolment(dir, recipients, log)
}

// enrolment writes what a technician installs on a phone of the demo facility.
func enrolment(dir string, recipients []string, log *slog.Logger) error {
	repo, err := tufrepo.Open(filepath.Join(dir, "repo"))
	if err != nil {
		return err
	}
	root, err := repo.RootJSON()
	if err != nil {
		return err
	}
	auditKey, err := os.ReadFile(filepath.Join(dir, "audit.key"))
	if err != nil {
		return err
	}
	files := map[string][]byte{
		provisioning.RootFile:       root,
		provisioning.RepositoryFile: tufclient.Repository{URL: "file://" + filepath.Join(dir, "repo")}.Marshal(),
		provisioning.RecipientsFile: []byte(strings.Join(recipients, "\n") + "\n"),
		provisioning.AuditKeyFile:   auditKey,
		provisioning.FacilityFile:   []byte(Facility + "\n"),
	}
	enrol := filepath.Join(dir, EnrolDir)
	if err := os.MkdirAll(enrol, 0o700); err != nil {
		return err
	}
	for _, name := range provisioning.EnrolmentFiles {
		if err := atomicfile.Write(filepath.Join(enrol, name), files[name], 0o600); err != nil {
			return err
		}
	}
	log.Info("wrote the demo enrolment (what a technician installs in a phone's conf/)", "event", "demo_written", "dir", enrol)
	return nil
}

// repository makes the demo's keys and repository, delegates as a real deployment does
// (README, "Who signs what"), and publishes version 1 of the demo registry and of the demo
// policy.
func repository(dir string, recipients []string) error {
	roleKeys, signers, err := roleKeys(dir)
	if err != nil {
		return err
	}
	repoDir := filepath.Join(dir, "repo")
	if err := tufrepo.Init(repoDir, roleKeys, signers, Expiry, time.Now()); err != nil {
		return err
	}
	delegated, err := delegatedKeys(dir)
	if err != nil {
		return err
	}
	for role, s := range delegated {
		signers[role] = s.signers
	}
	for _, d := range delegations(delegated) {
		r, err := tufrepo.Open(repoDir)
		if err != nil {
			return err
		}
		if err := r.Delegate(d, signers, Expiry, time.Now()); err != nil {
			return err
		}
	}
	auditKey := make([]byte, 32)
	rand.Read(auditKey)
	if err := atomicfile.Write(filepath.Join(dir, "audit.key"), []byte(hex.EncodeToString(auditKey)+"\n"), 0o600); err != nil {
		return err
	}
	var reg bytes.Buffer
	if err := registry.Build(&reg, 1, Items(), nil, nil); err != nil {
		return err
	}
	regFile := filepath.Join(dir, "registry-1.reg")
	if err := atomicfile.Write(regFile, reg.Bytes(), 0o600); err != nil {
		return err
	}
	pol, err := policy.Demo(rand.Reader, pin.DefaultParams(), recipients)
	if err != nil {
		return err
	}
	polFile := filepath.Join(dir, "policy.json")
	if err := atomicfile.Write(polFile, pol, 0o600); err != nil {
		return err
	}
	r, err := tufrepo.Open(repoDir)
	if err != nil {
		return err
	}
	if err := r.AddTarget(updates.RegistryTarget, regFile, updates.Custom{Version: 1}); err != nil {
		return err
	}
	if err := r.AddTarget(updates.PolicyTarget(Facility), polFile, updates.Custom{Version: 1}); err != nil {
		return err
	}
	return r.Commit(signers, Expiry, time.Now())
}

// Items are the demo registry's entries.
func Items() []registry.Item {
	var items []registry.Item
	for _, e := range registry.Demo().Entries {
		items = append(items, registry.Item{Number: e.Number, Prefix: e.Prefix, Kind: registry.Kind(e.Kind), Label: e.Label})
	}
	return items
}

// roleKeys makes (or reads) one key per TUF role in dir/tuf.
func roleKeys(dir string) (map[string]tufrepo.RoleKeys, tufrepo.Signers, error) {
	tuf := filepath.Join(dir, "tuf")
	if err := os.MkdirAll(tuf, 0o700); err != nil {
		return nil, nil, err
	}
	rk, signers := map[string]tufrepo.RoleKeys{}, tufrepo.Signers{}
	for _, role := range []string{tufrepo.Root, tufrepo.Targets, tufrepo.Snapshot, tufrepo.Timestamp} {
		k, err := loadOrCreateRoleKey(filepath.Join(tuf, role+".pem"))
		if err != nil {
			return nil, nil, err
		}
		rk[role] = tufrepo.RoleKeys{Keys: []ed25519.PublicKey{k.Public().(ed25519.PublicKey)}, Threshold: 1}
		signers[role] = []ed25519.PrivateKey{k}
	}
	return rk, signers, nil
}

// delegatedParty is the keys of one delegated role in the demo: all of them, and those the
// demo signs with.
type delegatedParty struct {
	keys    []ed25519.PublicKey
	signers []ed25519.PrivateKey
}

// delegatedKeys makes (or reads) the keys of the demo's delegated roles in dir/tuf: three
// keepers for the registry, of whom the demo signs with two (the threshold) so that a
// keeper's absence is the normal case; the facility's key for its policy; the vendor's
// release key for firmware.
func delegatedKeys(dir string) (map[string]delegatedParty, error) {
	files := map[string][]string{
		tufrepo.RegistryRole:         {"keeper-1", "keeper-2", "keeper-3"},
		tufrepo.PolicyRole(Facility): {tufrepo.PolicyRole(Facility)},
		tufrepo.FirmwareRole:         {tufrepo.FirmwareRole},
	}
	out := map[string]delegatedParty{}
	for role, names := range files {
		var p delegatedParty
		for i, n := range names {
			k, err := loadOrCreateRoleKey(filepath.Join(dir, "tuf", n+".pem"))
			if err != nil {
				return nil, err
			}
			p.keys = append(p.keys, k.Public().(ed25519.PublicKey))
			if i < 2 {
				p.signers = append(p.signers, k)
			}
		}
		out[role] = p
	}
	return out, nil
}

// delegations are the demo's delegated roles.
func delegations(p map[string]delegatedParty) []tufrepo.Delegation {
	return []tufrepo.Delegation{
		{Name: tufrepo.RegistryRole, Paths: tufrepo.RegistryPaths(), Keys: p[tufrepo.RegistryRole].keys, Threshold: 2},
		{Name: tufrepo.PolicyRole(Facility), Paths: tufrepo.PolicyPaths(Facility), Keys: p[tufrepo.PolicyRole(Facility)].keys, Threshold: 1},
		{Name: tufrepo.FirmwareRole, Paths: tufrepo.FirmwarePaths(), Keys: p[tufrepo.FirmwareRole].keys, Threshold: 1},
	}
}

func loadOrCreateRoleKey(path string) (ed25519.PrivateKey, error) {
	if b, err := os.ReadFile(path); err == nil {
		return tufrepo.ParsePrivateKey(b)
	}
	k, err := tufrepo.GenerateKey()
	if err != nil {
		return nil, err
	}
	b, err := tufrepo.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	return k, atomicfile.Write(path, b, 0o600)
}

// identities returns the recipients of the demo's two identities (investigations and
// escrow), making the identity files in dir if they are not there yet.
func identities(dir string, log *slog.Logger) ([]string, error) {
	var out []string
	for _, name := range []string{"investigations.key", "escrow.key"} {
		path := filepath.Join(dir, name)
		if b, err := os.ReadFile(path); err == nil {
			ids, err := age.ParseIdentities(bytes.NewReader(b))
			if err != nil || len(ids) != 1 {
				return nil, fmt.Errorf("demo key %s: not one age identity: %v", path, err)
			}
			x, ok := ids[0].(*age.X25519Identity)
			if !ok {
				return nil, fmt.Errorf("demo key %s: not an X25519 identity", path)
			}
			out = append(out, x.Recipient().String())
			continue
		}
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return nil, err
		}
		file := fmt.Sprintf("# created: %s\n# public key: %s\n%s\n", time.Now().UTC().Format(time.RFC3339), id.Recipient(), id)
		if err := atomicfile.Write(path, []byte(file), 0o600); err != nil {
			return nil, fmt.Errorf("demo key: %w", err)
		}
		log.Info("wrote demo recording identity (keep it off the phone)", "event", "demo_written", "file", path)
		out = append(out, id.Recipient().String())
	}
	return out, nil
}

// provisioningKeys gives the demo facility a provisioning key, the phones' trust file and a
// technician key with a certificate valid for a year, so that the console can be tried at
// once.
func provisioningKeys(dir string, log *slog.Logger) error {
	if exists(filepath.Join(dir, "provisioning.pub")) {
		return nil
	}
	_, prov, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	techPub, tech, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	cert, err := provisioning.IssueCertificate(provisioning.CertBody{Serial: 1, Name: "Demo Technician", Facility: Facility,
		PublicKey: techPub, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0)}, prov)
	if err != nil {
		return err
	}
	provPEM, err := identity.MarshalPrivateKey(prov)
	if err != nil {
		return err
	}
	techPEM, err := identity.MarshalPrivateKey(tech)
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
	}{
		{"provisioning.key", provPEM},
		{"technician.key", techPEM},
		{"technician.cert", cert},
		// Last: its presence says this part is complete.
		{"provisioning.pub", []byte(provisioning.PublicKeyLine(Facility, prov.Public().(ed25519.PublicKey)) + "\n")},
	}
	for _, f := range files {
		if err := atomicfile.Write(filepath.Join(dir, f.name), f.data, 0o600); err != nil {
			return fmt.Errorf("demo provisioning: %w", err)
		}
	}
	log.Info("wrote demo provisioning key and technician certificate (keep them off the phone)", "event", "demo_written", "dir", dir)
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
