package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/wallphone/wallphone/provisioning"
	"github.com/wallphone/wallphone/recording/recipients"
	"github.com/wallphone/wallphone/uplink"
)

// uplinkRun is the uplink, ready to drain the spool to the vault.
type uplinkRun struct {
	u     *uplink.Uplink
	state *uplink.State
}

// run drains until ctx is done, then closes the uplink's state.
func (r *uplinkRun) run(ctx context.Context) {
	defer r.state.Close()
	r.u.Run(ctx)
}

// newUplink prepares the uplink if there is a vault; nil if there is none or it is unusable.
// The agent keeps running whatever goes wrong here: without a vault the spool just waits.
// It says in a.uplinkStatus what came of it, for the console.
func (a *Agent) newUplink() *uplinkRun {
	log := a.log
	vault, state, what, err := a.openVault()
	if err != nil {
		a.uplinkStatus = "off: vault unusable: " + err.Error()
		log.Error("vault unusable: recordings stay in the spool until it is fixed", "event", "uplink_disabled", "err", err)
		return nil
	}
	if vault == nil {
		a.uplinkStatus = "off: no vault (" + what + "); recordings stay in the spool"
		log.Warn("no vault configured: recordings stay in the spool", "event", "uplink_disabled", "why", what)
		return nil
	}
	// Call records are sealed to the recipients installed at enrolment, as recordings are;
	// with none, they wait on the phone.
	var calls uplink.Calls = lockedStore{a}
	var rcps []age.Recipient
	switch r, err := recipients.ParseList(a.pinned); {
	case len(a.pinned) == 0:
		log.Warn("no recording recipients pinned at enrolment: call records stay on the phone", "event", "uplink_no_records")
		calls = nil
	case err != nil:
		log.Warn("recording recipients unusable: call records stay on the phone", "event", "uplink_no_records", "err", err)
		calls = nil
	default:
		rcps = r
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
		a.uplinkStatus = "off: vault unusable: " + err.Error()
		log.Error("vault unusable", "event", "uplink_disabled", "err", err)
		return nil
	}
	a.uplinkStatus = "uploading to " + what + " (its status object says how the drain goes)"
	log.Info("uplink started", "event", "uplink_started", "vault", what)
	return &uplinkRun{u: u, state: state}
}

// openVault reads Config.Vault: none, a directory, or conf/vault.json (DefaultVault when
// there is none). A nil vault with no error means none is configured; what says which
// vault, or why none.
func (a *Agent) openVault() (v uplink.Vault, state *uplink.State, what string, err error) {
	cfg := a.cfg
	conf := filepath.Join(cfg.DataDir, "conf", provisioning.VaultFile)
	var c uplink.Config
	switch {
	case cfg.Vault == "none":
		return nil, nil, "--vault none", nil
	case cfg.Vault != "":
		dir, err := filepath.Abs(cfg.Vault)
		if err != nil {
			return nil, nil, "", err
		}
		c = uplink.Config{Dir: dir}
	default:
		b, err := os.ReadFile(conf)
		switch {
		case errors.Is(err, fs.ErrNotExist) && cfg.DefaultVault != "":
			c = uplink.Config{Dir: cfg.DefaultVault}
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
	state, err = uplink.OpenState(filepath.Join(cfg.DataDir, "uplink.db"))
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
	s3, err := uplink.NewS3(c, state, nil, a.log)
	if err != nil {
		state.Close()
		return nil, nil, "", err
	}
	return s3, state, c.Endpoint + "/" + c.Bucket, nil
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
type registryState struct{ a *Agent }

func (r registryState) RegistryState() (uint64, time.Time) {
	rs := r.a.rules(r.a.clock.Now())
	return rs.registryVersion, rs.freshUntil
}

// FirmwareState is what the status object says of the firmware: the console's line.
func (r registryState) FirmwareState() string {
	if s := r.a.fwStatus.Load(); s != nil {
		return *s
	}
	return ""
}
