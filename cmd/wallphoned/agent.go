package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
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
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/store"
)

// agent is what every board shares: the data directory and what is loaded from it.
type agent struct {
	log      *slog.Logger
	db       *store.DB
	deviceID string
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
	a := &agent{log: log, db: db, deviceID: id, prompts: prompts, policy: pol}
	a.registry = loadRegistry(cfg.registry, log)
	log.Info("agent started", "event", "agent_started", "board", cfg.board, "data", cfg.dataDir,
		"device_id", id, "device_key", identity.Fingerprint(key.Public().(ed25519.PublicKey)), "device_key_created", created,
		"facility", pol.Facility, "policy_version", pol.Version, "registry_version", registryVersion(a.registry))
	return a, nil
}

func (a *agent) close() error { return a.db.Close() }

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
// registry are the defaults inside the data directory and do not exist yet.
func writeDemoFiles(cfg config, log *slog.Logger) error {
	polPath := filepath.Join(cfg.dataDir, "policy.json")
	if cfg.policy == polPath && !exists(polPath) {
		b, err := policy.Demo(rand.Reader, pin.DefaultParams())
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

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// discardRecorder stands where the encrypted spool goes: it takes the frames of a recorded
// call and keeps none of them, so nothing plaintext is ever written.
type discardRecorder struct{ log *slog.Logger }

func (r discardRecorder) Start(info call.RecordingInfo) (call.Recording, error) {
	return &discardRecording{log: r.log, callID: info.CallID}, nil
}

type discardRecording struct {
	log    *slog.Logger
	callID string
	frames int
}

func (r *discardRecording) Write(caller, called *audio.Frame) error {
	r.frames++
	return nil
}

func (r *discardRecording) Close() error {
	r.log.Warn("recording not kept: this build has no recording spool", "event", "recording_discarded",
		"call_id", r.callID, "frames", r.frames)
	return nil
}
