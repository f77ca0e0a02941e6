package chaos

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/wallphone/wallphone/uplink/s3test"
)

// observe takes in one event of the agent's log. What must hold at once is checked here: the
// decision each number gets, no recording of a call not decided recorded, no recorded call
// connected unrecorded, no registry that was tampered with installed, no version going back.
func (h *harness) observe(e event) {
	t := h.t
	h.observeFirmware(e)
	switch e.name() {
	case "agent_started":
		h.deviceID, h.deviceKey = e.DeviceID, e.DeviceKey
	case "registry_installed":
		if h.tampered[e.Version] {
			t.Errorf("registry version %d, tampered with after signing, was installed", e.Version)
		}
		if e.Version <= h.regInstall {
			t.Errorf("registry version %d installed after version %d", e.Version, h.regInstall)
		}
		h.regInstall = e.Version
		h.counts["registry installs"]++
	case "registry_in_force":
		if e.Version < h.regInForce {
			t.Errorf("registry version %d in force after version %d", e.Version, h.regInForce)
		}
		h.regInForce = e.Version
	case "policy_installed":
		if e.Version <= h.polInstall {
			t.Errorf("policy version %d installed after version %d", e.Version, h.polInstall)
		}
		h.polInstall = e.Version
		h.counts["policy installs"]++
	case "update_error":
		h.counts["update errors"]++
	case "recording_destroyed":
		h.destroyed[e.CallID] = true
		h.counts["recordings destroyed on the phone"]++
	case "record_scrubbed":
		h.counts["call records scrubbed on the phone"]++
	case "call_cut_short":
		h.counts["calls found cut short at start-up"]++
	case "recording_failed":
		h.counts["recordings failed"]++
	case "uplink_retry":
		h.counts["uplink retries"]++
	case "purge_uploaded":
		h.counts["purge requests uploaded"]++
	}
	if e.name() == "registry_installed" && h.inCall() {
		h.counts["registry installs during a call"]++
	}
	o := h.byID[e.CallID]
	if e.CallID == "" || o == nil {
		if e.name() == "segment_sealed" {
			t.Errorf("segment sealed for call %s, which the harness did not make", e.CallID)
		}
		return
	}
	switch e.name() {
	case "decision":
		o.decision, o.regVersion = e.Decision, e.RegistryVersion
		if want := h.expect(o); e.Decision != want {
			t.Errorf("call %s to %s (%s) decided %s under registry %d, want %s", o.id, o.spec.kind, o.spec.mode, e.Decision, e.RegistryVersion, want)
		}
	case "recording_started":
		o.recordingStarted = true
		if o.decision != "recorded" {
			t.Errorf("call %s decided %q is being recorded", o.id, o.decision)
		}
	case "segment_sealed":
		o.sealed[*e.Seq] = true
		if o.decision != "recorded" {
			t.Errorf("call %s decided %q has a sealed segment", o.id, o.decision)
		}
	case "connected":
		o.connected = true
		if rec := e.Recorded != nil && *e.Recorded; rec != (o.decision == "recorded") || (rec && !o.recordingStarted) {
			t.Errorf("call %s decided %q connected with recorded=%v (recording started: %v)", o.id, o.decision, rec, o.recordingStarted)
		}
	case "callee_accepted":
		o.accepted = true
	case "call_ended":
		o.ended, o.endReason = true, e.Reason
	case "onhook":
		o.onhook = true
	}
}

// inCall reports whether the last call made is between its off-hook and its on-hook.
func (h *harness) inCall() bool {
	if len(h.calls) == 0 {
		return false
	}
	o := h.calls[len(h.calls)-1]
	return o.id != "" && o.decision != "" && !o.ended && !o.onhook
}

// drained reports whether the phone has taken up the newest registry and its spool holds
// nothing more to send.
func (h *harness) drained() bool {
	if h.regInForce != h.lastReg {
		return false
	}
	left := 0
	for _, sub := range []string{"segments", "manifests", "purge"} {
		filepath.WalkDir(filepath.Join(h.data, "spool", sub), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
				left++
			}
			return nil
		})
	}
	return left == 0
}

// lateInVault reports whether a recording of a call to the late number is in the vault.
func (h *harness) lateInVault() bool {
	late := map[string]bool{}
	for _, o := range h.calls {
		if o.spec.kind == "late" && o.recordingStarted {
			late[o.id] = true
		}
	}
	if len(late) == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	found := false
	for obj := range h.s3.Root(h.t).ListObjects(ctx, s3test.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if f := strings.Split(obj.Key, "/"); obj.Err == nil && len(f) == 5 && late[f[3]] && f[4] == "manifest.age" {
			found = true
		}
	}
	return found
}

// staleTimestamp makes the repository's server serve a copy of the repository with its
// first timestamp put back, as a mirror that fell behind (or a replayed response) does: the
// phone, which has seen newer ones, must refuse it and keep what it has. fresh serves the
// repository itself again.
func (h *harness) staleTimestamp() {
	t := h.t
	stale := filepath.Join(h.dir, fmt.Sprintf("stale-%d", h.runs))
	if out, err := exec.Command("cp", "-a", filepath.Join(h.keys, "repo"), stale).CombinedOutput(); err != nil {
		t.Fatalf("copy the repository: %v: %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(stale, "metadata", "timestamp.json"), h.oldStamp, 0o644); err != nil {
		t.Fatal(err)
	}
	h.serve(stale)
}

// serve points the repository's server at dir, through the symbolic link it serves.
func (h *harness) serve(dir string) {
	tmp := h.repo.dir + ".new"
	os.Remove(tmp)
	if err := os.Symlink(dir, tmp); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, h.repo.dir); err != nil {
		h.t.Fatal(err)
	}
}
