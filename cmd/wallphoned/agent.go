package main

import (
	"bytes"
	"time"

	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"filippo.io/age"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/wallphone/wallphone/atomicfile"
	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/call"
	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/pin"
	"github.com/wallphone/wallphone/policy"
	"github.com/wallphone/wallphone/purge"
	"github.com/wallphone/wallphone/recording"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/spool"
	"github.com/wallphone/wallphone/store"
)

// agent is what every board shares: the data directory and what is loaded from it.
type agent struct {
	log      *slog.Logger
	db       *store.DB
	spool    *spool.Spool
	recorder *recording.Recorder
	deviceID string
	key      ed25519.PrivateKey
	prompts  *audio.Prompts
	policy   *policy.Policy
	registry call.Registry // nil: no usable registry
}

// openAgent prepares the data directory (writing the demo policy and registry on first run
// if the files are the defaults and absent) and loads everything from it.
func openAgent(cfg config, log *slog.Logger) (*agent, error) {
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if err := writeDemoFiles(cfg, log); err != nil {
		return nil, err
	}
	prompts, err := audio.LoadPrompts()
	if err != nil {
		return nil, fmt.Errorf("prompts: %w", err)
	}
	pol, err := policy.Load(cfg.policy)
	if err != nil {
		return nil, fmt.Errorf("facility policy: %w", err)
	}
	key, created, err := identity.LoadOrCreate(filepath.Join(cfg.dataDir, "device.key"))
	if err != nil {
		return nil, err
	}
	db, err := store.Open(filepath.Join(cfg.dataDir, "state.db"))
	if err != nil {
		return nil, err
	}
	id, err := db.DeviceID()
	if err != nil {
		db.Close()
		return nil, err
	}
	a := &agent{log: log, db: db, deviceID: id, key: key, prompts: prompts, policy: pol}
	a.registry = loadRegistry(cfg.registry, log)
	a.spool, err = spool.Open(spool.Options{
		Dir:      filepath.Join(cfg.dataDir, "spool"),
		MaxBytes: pol.Recording.SpoolMaxBytes,
		Reserve:  callReserve(pol),
		Logger:   log,
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	a.recorder, err = recording.New(recording.Options{
		Spool: a.spool, Recipients: pol.Recording.Recipients, Segment: pol.Recording.Segment,
		DeviceID: id, DeviceKey: key, Logger: log,
	})
	if err != nil {
		a.spool.Close()
		db.Close()
		return nil, err
	}
	log.Info("agent started", "event", "agent_started", "board", cfg.board, "data", cfg.dataDir,
		"device_id", id, "device_key", identity.Fingerprint(key.Public().(ed25519.PublicKey)), "device_key_created", created,
		"facility", pol.Facility, "policy_version", pol.Version, "registry_version", registryVersion(a.registry))
	if a.registry != nil {
		// A registry may make privileged a number recorded before it arrived.
		n, err := purge.Sweep(a.registry, db, a.spool, key, id, time.Now(), log)
		if err != nil {
			log.Error("destroy-on-discovery sweep failed; it runs again at the next start", "event", "purge_error", "err", err)
		}
		if n > 0 {
			// The scrubbed numbers must not linger in the database file's free pages.
			if err := a.compactStore(); err != nil {
				a.close()
				return nil, err
			}
		}
	}
	return a, nil
}

// compactStore rewrites the state database without its freed pages.
func (a *agent) compactStore() error {
	path := a.db.Path()
	if err := a.db.Close(); err != nil {
		return err
	}
	if err := store.Compact(path); err != nil {
		a.log.Error("compacting the state database failed: scrubbed numbers may remain in its free pages", "event", "purge_error", "err", err)
	}
	db, err := store.Open(path)
	if err != nil {
		return err
	}
	a.db = db
	return nil
}

// close seals what is still in flight and closes the spool and the database, in that order.
func (a *agent) close() error {
	return errors.Join(a.recorder.Close(), a.spool.Close(), a.db.Close())
}

// callReserve is the room the spool must have before a recorded call starts: the longest
// call a caller may make, sealed, with room for segment and manifest overheads.
func callReserve(pol *policy.Policy) int64 {
	longest := pol.Limits.CallLimit
	for _, c := range pol.Callers() {
		longest = max(longest, c.CallLimit)
	}
	const sealedBytesPerSecond = 16000 // two directions of µ-law
	segments := int64(longest/pol.Recording.Segment) + 1
	return int64(longest.Seconds())*sealedBytesPerSecond + segments*1024 + 64<<10
}

// loadRegistry never fails the agent: a phone with no usable registry still runs, records
// nothing and connects only free numbers, and says why.
func loadRegistry(path string, log *slog.Logger) call.Registry {
	if path == "none" {
		log.Warn("no registry: calls other than to free numbers are refused", "event", "registry_missing")
		return nil
	}
	b, err := os.ReadFile(path)
	if err == nil {
		var reg *registry.Memory
		if reg, err = registry.ParseJSON(b); err == nil {
			return reg
		}
	}
	log.Error("registry unusable: calls other than to free numbers are refused", "event", "registry_missing",
		"file", path, "err", err)
	return nil
}

func registryVersion(r call.Registry) uint64 {
	if r == nil {
		return 0
	}
	return r.Version()
}

// writeDemoFiles gives a fresh data directory a demo facility: used only when the policy and
// registry are the defaults inside the data directory and do not exist yet. The demo's
// recording identities go to their own directory, never the data directory: the phone must
// hold no key that opens its recordings.
func writeDemoFiles(cfg config, log *slog.Logger) error {
	if cfg.board != "sim" || cfg.boardFile != "" {
		// A phone in a facility never gets a demo policy with demo PINs: its policy comes
		// from the facility, and without one it does not start.
		return nil
	}
	polPath := filepath.Join(cfg.dataDir, "policy.json")
	if cfg.policy == polPath && !exists(polPath) {
		recipients, err := demoRecipients(cfg.demoKeys, log)
		if err != nil {
			return err
		}
		b, err := policy.Demo(rand.Reader, pin.DefaultParams(), recipients)
		if err != nil {
			return fmt.Errorf("demo policy: %w", err)
		}
		if err := atomicfile.Write(polPath, b, 0o600); err != nil {
			return err
		}
		log.Info("wrote demo facility policy", "event", "demo_written", "file", polPath)
	}
	regPath := filepath.Join(cfg.dataDir, "registry.json")
	if cfg.registry == regPath && !exists(regPath) {
		b, err := json.MarshalIndent(registry.Demo(), "", "  ")
		if err != nil {
			return err
		}
		if err := atomicfile.Write(regPath, append(b, '\n'), 0o600); err != nil {
			return err
		}
		log.Info("wrote demo registry", "event", "demo_written", "file", regPath)
	}
	return nil
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

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
