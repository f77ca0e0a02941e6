package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/wallphone/wallphone/backoffice/tufrepo"
	"github.com/wallphone/wallphone/internal/atomicfile"
	"github.com/wallphone/wallphone/pin"
	"github.com/wallphone/wallphone/policy"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/updates"
)

// demoExpiry keeps the demo repository valid for as long as anyone plays with it: nothing
// re-signs its timestamp. A vendor's repository uses tufrepo.DefaultExpiry.
var demoExpiry = tufrepo.Expiry{Root: 10 * 365 * 24 * time.Hour, Targets: 5 * 365 * 24 * time.Hour,
	Snapshot: 5 * 365 * 24 * time.Hour, Timestamp: 5 * 365 * 24 * time.Hour}

// writeDemo enrols a fresh simulated phone in a demo facility: it plays the vendor (a TUF
// repository with the demo registry and the demo policy, in the demo-keys directory beside
// the data directory, with every key that signs it) and the technician (conf/ in the data
// directory: the facility, the repository's root and address, the recording recipients and
// the audit key). The phone then fetches and verifies its rules from that repository like
// any phone. Nothing that opens recordings or signs rules is kept in the data directory.
func writeDemo(cfg config, log *slog.Logger) error {
	if cfg.board != "sim" || cfg.boardFile != "" || !cfg.demo {
		// A phone in a facility is enrolled by a technician, never with demo keys.
		return nil
	}
	conf := filepath.Join(cfg.dataDir, "conf")
	if exists(filepath.Join(conf, confFacility)) {
		return nil
	}
	keys, err := filepath.Abs(cfg.demoKeys)
	if err != nil {
		return err
	}
	recipients, err := demoRecipients(keys, log)
	if err != nil {
		return err
	}
	repoDir := filepath.Join(keys, "repo")
	if !exists(filepath.Join(repoDir, "metadata", "timestamp.json")) {
		if err := demoRepository(keys, recipients); err != nil {
			return fmt.Errorf("demo repository: %w", err)
		}
		log.Info("wrote demo repository (the vendor's side, keys included)", "event", "demo_written", "dir", repoDir)
	}
	repo, err := tufrepo.Open(repoDir)
	if err != nil {
		return err
	}
	root, err := repo.RootJSON()
	if err != nil {
		return err
	}
	auditKey, err := os.ReadFile(filepath.Join(keys, confAuditKey))
	if err != nil {
		return err
	}
	where, _ := json.Marshal(Repository{URL: "file://" + repoDir})
	if err := os.MkdirAll(conf, 0o700); err != nil {
		return err
	}
	// The facility file goes last: it is what says the phone is enrolled.
	for _, f := range []struct {
		name string
		data []byte
	}{
		{confRoot, root},
		{confRepository, append(where, '\n')},
		{confRecipients, []byte(strings.Join(recipients, "\n") + "\n")},
		{confAuditKey, auditKey},
		{confFacility, []byte(policy.DemoFacility + "\n")},
	} {
		if err := atomicfile.Write(filepath.Join(conf, f.name), f.data, 0o600); err != nil {
			return err
		}
	}
	log.Info("enrolled in the demo facility", "event", "demo_written", "dir", conf, "facility", policy.DemoFacility)
	return nil
}

// demoRepository makes the demo's keys and repository, and publishes version 1 of the demo
// registry and of the demo policy.
func demoRepository(keys string, recipients []string) error {
	roleKeys, signers, err := demoRoleKeys(keys)
	if err != nil {
		return err
	}
	repoDir := filepath.Join(keys, "repo")
	if err := tufrepo.Init(repoDir, roleKeys, signers, demoExpiry, time.Now()); err != nil {
		return err
	}
	auditKey := make([]byte, 32)
	rand.Read(auditKey)
	if err := atomicfile.Write(filepath.Join(keys, confAuditKey), []byte(hex.EncodeToString(auditKey)+"\n"), 0o600); err != nil {
		return err
	}
	var items []registry.Item
	for _, e := range registry.Demo().Entries {
		items = append(items, registry.Item{Number: e.Number, Prefix: e.Prefix, Kind: registry.Kind(e.Kind), Label: e.Label})
	}
	var reg bytes.Buffer
	if err := registry.Build(&reg, 1, items, nil, nil); err != nil {
		return err
	}
	regFile := filepath.Join(keys, "registry-1.reg")
	if err := atomicfile.Write(regFile, reg.Bytes(), 0o600); err != nil {
		return err
	}
	pol, err := policy.Demo(rand.Reader, pin.DefaultParams(), recipients)
	if err != nil {
		return err
	}
	polFile := filepath.Join(keys, "policy.json")
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
	if err := r.AddTarget(updates.PolicyTarget(policy.DemoFacility), polFile, updates.Custom{Version: 1}); err != nil {
		return err
	}
	return r.Commit(signers, demoExpiry, time.Now())
}

// demoRoleKeys makes (or reads) one key per TUF role in keys/tuf.
func demoRoleKeys(keys string) (map[string]tufrepo.RoleKeys, tufrepo.Signers, error) {
	dir := filepath.Join(keys, "tuf")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	rk, signers := map[string]tufrepo.RoleKeys{}, tufrepo.Signers{}
	for _, role := range []string{tufrepo.Root, tufrepo.Targets, tufrepo.Snapshot, tufrepo.Timestamp} {
		path := filepath.Join(dir, role+".pem")
		k, err := loadOrCreateRoleKey(path)
		if err != nil {
			return nil, nil, err
		}
		rk[role] = tufrepo.RoleKeys{Keys: []ed25519.PublicKey{k.Public().(ed25519.PublicKey)}, Threshold: 1}
		signers[role] = []ed25519.PrivateKey{k}
	}
	return rk, signers, nil
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

// demoRecipients returns the recipients of the demo's two identities (investigations and
// escrow), making the identity files in dir if they are not there yet.
func demoRecipients(dir string, log *slog.Logger) ([]string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("demo keys: %w", err)
	}
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
