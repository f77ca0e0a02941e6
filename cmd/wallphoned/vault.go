package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/wallphone/wallphone/recording/recipients"
	"github.com/wallphone/wallphone/uplink"
)

// startUplink starts the goroutine that drains the spool to the vault, if there is one, and
// returns the function that stops it and waits for it (safe to call more than once). The
// agent keeps running whatever goes wrong here: without a vault the spool just waits.
func startUplink(ctx context.Context, cfg config, a *agent) (stop func()) {
	nothing := func() {}
	log := a.log
	vault, state, what, err := openVault(cfg, log)
	if err != nil {
		log.Error("vault unusable: recordings stay in the spool until it is fixed", "event", "uplink_disabled", "err", err)
		return nothing
	}
	if vault == nil {
		log.Warn("no vault configured: recordings stay in the spool", "event", "uplink_disabled", "why", what)
		return nothing
	}
	// Call records are sealed to the recipients installed at enrolment, or else to those of
	// the policy in force at start; with neither, they wait on the phone.
	var calls uplink.Calls = lockedStore{a}
	keys := a.pinned
	if len(keys) == 0 && a.policy != nil {
		keys = a.policy.Recording.Recipients
	}
	rcps, err := recipients.ParseList(keys)
	if err != nil || len(rcps) == 0 {
		log.Warn("no recording recipients to seal call records to: they stay on the phone", "event", "uplink_no_records", "err", err)
		calls, rcps = nil, nil
	}
	policyFacility := ""
	if a.policy != nil {
		policyFacility = a.policy.Facility
	}
	u, err := uplink.New(uplink.Options{
		Vault: vault, Spool: a.spool, Facility: facilityID(a.facility, policyFacility), DeviceID: a.deviceID,
		Calls: calls, Recipients: rcps, State: state, Registry: registryState{a}, Logger: log,
	})
	if err != nil {
		state.Close()
		log.Error("vault unusable", "event", "uplink_disabled", "err", err)
		return nothing
	}
	log.Info("uplink started", "event", "uplink_started", "vault", what)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		u.Run(ctx)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
			state.Close()
		})
	}
}

// openVault reads --vault: none, a directory, or (by default on a real board)
// <data>/conf/vault.json. A nil vault with no error means none is configured; what says
// which vault, or why none.
func openVault(cfg config, log *slog.Logger) (v uplink.Vault, state *uplink.State, what string, err error) {
	conf := filepath.Join(cfg.dataDir, "conf", "vault.json")
	var c uplink.Config
	switch {
	case cfg.vault == "none":
		return nil, nil, "--vault none", nil
	case cfg.vault != "":
		dir, err := filepath.Abs(cfg.vault)
		if err != nil {
			return nil, nil, "", err
		}
		c = uplink.Config{Dir: dir}
	default:
		b, err := os.ReadFile(conf)
		switch {
		case errors.Is(err, fs.ErrNotExist) && cfg.board == "sim" && cfg.boardFile == "":
			c = uplink.Config{Dir: filepath.Clean(mustAbs(cfg.dataDir)) + "-vault"}
		case errors.Is(err, fs.ErrNotExist):
			return nil, nil, conf + " is missing", nil
		case err != nil:
			return nil, nil, "", err
		default:
			if c, err = uplink.ParseConfig(b); err != nil {
				return nil, nil, "", fmt.Errorf("%s: %w", conf, err)
			}
		}
	}
	state, err = uplink.OpenState(filepath.Join(cfg.dataDir, "uplink.db"))
	if err != nil {
		return nil, nil, "", err
	}
	if c.Dir != "" {
		if err := os.MkdirAll(c.Dir, 0o700); err != nil {
			state.Close()
			return nil, nil, "", fmt.Errorf("vault directory: %w", err)
		}
		return uplink.NewDir(c.Dir, c.BandwidthBytesPerSecond), state, "directory " + c.Dir, nil
	}
	s3, err := uplink.NewS3(c, state, nil, log)
	if err != nil {
		state.Close()
		return nil, nil, "", err
	}
	return s3, state, c.Endpoint + "/" + c.Bucket, nil
}

func mustAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// facilityID names the facility in object keys: the enrolment's facility id, else (a phone
// run on a local policy file) the policy's facility name made into a key element ("Demo
// County Jail" → demo-county-jail).
func facilityID(enrolled, name string) string {
	if enrolled != "" {
		return enrolled
	}
	if id := slug(name); id != "" {
		return id
	}
	return "facility"
}

func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(strings.TrimSpace(s)) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '.' && b.Len() > 0:
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(c)
		default:
			dash = true
		}
		if b.Len() >= 64 {
			break
		}
	}
	out := b.String()
	if len(out) > 64 {
		out = out[:64]
	}
	return strings.Trim(out, ".-")
}

// registryState reports the registry in force to the status object: its version, and when
// the metadata that vouched for it expires (zero for local files).
type registryState struct{ a *agent }

func (r registryState) RegistryState() (uint64, time.Time) {
	rs := r.a.rules(time.Now())
	return rs.registryVersion, rs.freshUntil
}
