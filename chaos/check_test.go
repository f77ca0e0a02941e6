package chaos

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"filippo.io/age"

	"github.com/wallphone/wallphone/audit"
	"github.com/wallphone/wallphone/callrecord"
	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/recording"
)

// final brings the repository's story to its end, then runs the agent once more with
// every server up and no fault: it must serve a recorded call, a privileged one and a free
// one, take up the newest registry, drain its spool, and quit cleanly. The back office then
// carries out the purge requests.
func (h *harness) final() {
	for h.stage < len(stageNames)-1 {
		h.stepRepo(1, true)
	}
	h.emptySpoolFS()
	h.run(runPlan{final: true, drainAfterCalls: true, calls: []callSpec{
		{"recorded", callerEN, finalNumber, "accept"},
		{"privileged", callerEN, privilegedNumbers[2], "talk"},
		{"free", callerES, freeNumber, "talk"},
	}})
	h.purge()
}

// vaultCall is what the vault holds of one call: its objects by name (000000.age ...,
// manifest.age, record.age), and under which days.
type vaultCall struct {
	days    map[string]bool
	objects map[string][]byte
}

// check is the end of the run: the promises checked from outside, on the vault's objects
// (read with the admin's credentials and opened with the investigator's identity), the
// phone's data directory, its audit log and everything it logged.
func (h *harness) check() {
	t := h.t
	id := h.identity("investigations.key")
	objects := h.s3.Objects(t)
	calls := map[string]*vaultCall{}
	receipts := map[string]bool{}
	purges := 0
	for k, b := range objects {
		f := strings.Split(k, "/")
		switch {
		case len(f) == 5 && f[0] == "demo-county":
			c := calls[f[3]]
			if c == nil {
				c = &vaultCall{days: map[string]bool{}, objects: map[string][]byte{}}
				calls[f[3]] = c
			}
			c.days[f[2]] = true
			c.objects[f[4]] = b
		case len(f) == 4 && f[0] == "receipts":
			receipts[strings.TrimSuffix(f[3], ".json")] = true
		case len(f) == 4 && f[0] == "purge":
			purges++
		}
	}
	if purges != 0 {
		t.Errorf("%d purge requests left in the vault after the back office's purge", purges)
	}
	pub := h.devicePublic()

	var (
		privileged, free, recordedAccepted, inVaultOnce, segmentsLogged, segmentsMatched int
		manifests, lateRecorded, lateGone, lateReceipts, spoolMatched                    int
		lateUnrecordedRecords                                                            int
	)
	for _, o := range h.calls {
		if o.id == "" {
			continue
		}
		c := calls[o.id]
		switch {
		case o.decision == "privileged" || o.decision == "free":
			if o.decision == "privileged" {
				privileged++
			} else {
				free++
			}
			if c == nil {
				break
			}
			for name, b := range c.objects {
				if name != "record.age" {
					t.Errorf("%s call %s has %s in the vault", o.decision, o.id, name)
					continue
				}
				h.checkRecord(o, b, id)
			}
		case o.spec.kind == "late" && !o.recordingStarted && o.decision == "recorded" && c != nil && c.objects["record.age"] != nil && h.lateVer > 0:
			// Not recorded, and the number privileged since: its record may say the call was
			// made, never to whom (the phone scrubs it and has the vault's copy purged).
			h.checkRecord(o, c.objects["record.age"], id)
			lateUnrecordedRecords++
		case o.spec.kind == "late" && o.recordingStarted:
			lateRecorded++
			if !h.destroyed[o.id] {
				t.Errorf("call %s to the late-registered number was never destroyed on the phone", o.id)
			}
			if c == nil || onlyRecord(c) {
				lateGone++
			} else {
				t.Errorf("call %s to the late-registered number still has %v in the vault", o.id, names(c))
			}
			if receipts[o.id] {
				lateReceipts++
			} else {
				t.Errorf("call %s to the late-registered number has no purge receipt", o.id)
			}
		case o.recordingStarted:
			recordedAccepted++
			if c == nil || c.objects["manifest.age"] == nil {
				t.Errorf("recorded call %s (%s, killed %v) has no manifest in the vault", o.id, o.spec.mode, o.killed)
				break
			}
			if len(c.days) != 1 {
				t.Errorf("recorded call %s is in the vault under %d days", o.id, len(c.days))
			} else {
				inVaultOnce++
			}
			manifests++
			segmentsLogged += len(o.sealed)
			segmentsMatched += h.checkRecordedCall(o, c, id, pub)
		}
	}
	for key, sum := range h.spooled {
		callID, seq, _ := strings.Cut(key, "/")
		o := h.byID[callID]
		if o != nil && o.spec.kind == "late" {
			continue
		}
		c := calls[callID]
		if c == nil || hexSum(c.objects[seq+".age"]) != sum {
			t.Errorf("segment %s seen in the spool after a kill is not in the vault byte for byte", key)
			continue
		}
		spoolMatched++
	}
	// Nothing in the vault but the calls the harness made.
	for callID, c := range calls {
		if h.byID[callID] == nil {
			t.Errorf("the vault holds call %s (%v), which the harness did not make", callID, names(c))
		}
	}
	spoolLeft := h.spoolFiles()
	if len(spoolLeft) != 0 {
		t.Errorf("the spool still holds %v after the drain", spoolLeft)
	}

	auditEntries, auditDecisions := h.checkAudit(pub)
	found := h.searchPlaintext(objects, id)

	h.rows = append(h.rows,
		row{"privileged calls", privileged, "objects in the vault but sealed call records without a number: 0 (checked)"},
		row{"free calls", free, "objects in the vault but sealed call records without number or caller: 0 (checked)"},
		row{"recorded calls recorded (not late-registered)", recordedAccepted, fmt.Sprintf("in the vault exactly once: %d, manifests verifying: %d", inVaultOnce, manifests)},
		row{"segments the phone said it sealed", segmentsLogged, fmt.Sprintf("in the vault, listed in the signed manifest, byte for byte: %d", segmentsMatched)},
		row{"segments seen in the spool after a kill", len(h.spooled), fmt.Sprintf("of them not late-registered and in the vault byte for byte: %d", spoolMatched)},
		row{"late-registered number's recorded calls", lateRecorded, fmt.Sprintf("gone from the vault: %d, purge receipts: %d, destroyed on the phone: %d; unrecorded calls to it whose sealed record is in the vault, without the number: %d", lateGone, lateReceipts, len(h.destroyed), lateUnrecordedRecords)},
		row{"files left in the spool", len(spoolLeft), "after the drain"},
		row{"audit log entries", auditEntries, fmt.Sprintf("chain and signatures verify; decisions: %d, one per call", auditDecisions)},
		h.checkMemory(),
		h.fwRow(),
		row{"bytes searched for plaintext", found.bytes, fmt.Sprintf("called party's voice: %d, caller's voice: %d, privileged/free numbers: %d (the search finds the voices in a decrypted segment: %v)",
			found.callee, found.caller, found.numbers, found.selfTest)},
	)
}

// checkRecordedCall checks a recorded call in the vault: its manifest opens with the
// investigator's identity, is signed by the phone's key, names the call, the phone and the
// number dialed; every segment it lists is there with its hash and decrypts to this call's
// segment at that place; every segment the phone said it sealed is there; at most one segment
// beyond the list, and only if the manifest is incomplete. It returns how many of the phone's
// sealed segments it found.
func (h *harness) checkRecordedCall(o *callOutcome, c *vaultCall, id age.Identity, pub ed25519.PublicKey) int {
	t := h.t
	plain, err := recording.Decrypt(c.objects["manifest.age"], id)
	if err != nil {
		t.Errorf("call %s: manifest: %v", o.id, err)
		return 0
	}
	m, key, err := recording.OpenManifest(plain)
	if err != nil {
		t.Errorf("call %s: manifest: %v", o.id, err)
		return 0
	}
	if !bytes.Equal(key, pub) || m.CallID != o.id || m.DeviceID != h.deviceID || m.Number != o.spec.e164() || m.Decision != "recorded" {
		t.Errorf("call %s: manifest of call %s, device %s, number %s, decision %s, signed by the phone: %v",
			o.id, m.CallID, m.DeviceID, m.Number, m.Decision, bytes.Equal(key, pub))
	}
	listed := map[int]bool{}
	for _, s := range m.Segments {
		listed[s.Seq] = true
		b := c.objects[fmt.Sprintf("%06d.age", s.Seq)]
		if b == nil || hexSum(b) != s.SHA256 {
			t.Errorf("call %s: segment %d is missing from the vault or differs from the manifest", o.id, s.Seq)
		}
	}
	segs := 0
	for name, b := range c.objects {
		var seq int
		if _, err := fmt.Sscanf(name, "%06d.age", &seq); err != nil {
			continue
		}
		segs++
		if !listed[seq] && (m.Complete || seq != len(m.Segments)) {
			t.Errorf("call %s: segment %d in the vault, not in its manifest (%d listed, complete %v)", o.id, seq, len(m.Segments), m.Complete)
		}
		p, err := recording.Decrypt(b, id)
		if err != nil {
			t.Errorf("call %s segment %d: %v", o.id, seq, err)
			continue
		}
		meta, _, err := recording.ParseSegment(p)
		if err != nil || meta.CallID != o.id || meta.Seq != seq {
			t.Errorf("call %s segment %d: %+v %v", o.id, seq, meta, err)
		}
	}
	found := 0
	for seq := range o.sealed {
		if c.objects[fmt.Sprintf("%06d.age", seq)] != nil {
			found++
		} else {
			t.Errorf("call %s: segment %d, sealed by the phone, is not in the vault", o.id, seq)
		}
	}
	if o.onhook && o.ended && segs != len(m.Segments) {
		t.Errorf("call %s ended properly, yet %d segments in the vault and %d in its manifest", o.id, segs, len(m.Segments))
	}
	return found
}

// checkRecord opens the sealed call record of a privileged or free call: it may say that the
// call was made, never to whom (nor, for a free call, by whom).
func (h *harness) checkRecord(o *callOutcome, b []byte, id age.Identity) {
	plain, err := recording.Decrypt(b, id)
	if err != nil {
		h.t.Errorf("call %s: record: %v", o.id, err)
		return
	}
	r, err := callrecord.Parse(plain)
	if err != nil {
		h.t.Errorf("call %s: record: %v", o.id, err)
		return
	}
	if r.Number != "" || (o.decision == "free" && r.CallerID != "") || r.Recorded {
		h.t.Errorf("%s call %s to %s: its record in the vault says number %q, caller %q, recorded %v", o.decision, o.id, o.spec.kind, r.Number, r.CallerID, r.Recorded)
	}
}

// checkAudit verifies the audit log's chain and signatures from the phone's key, and that it
// holds one decision per call the phone logged a decision for (an invalid number is not
// one), with the keyed hash of the number dialed. It returns the entries and decisions.
func (h *harness) checkAudit(pub ed25519.PublicKey) (int, int) {
	t := h.t
	b, err := os.ReadFile(filepath.Join(h.data, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := audit.Verify(bytes.NewReader(b), pub)
	if err != nil {
		t.Errorf("audit log: %v", err)
	}
	kb, err := os.ReadFile(filepath.Join(h.keys, "audit.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := audit.ParseKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	decided := map[string]int{}
	unknown := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e audit.Entry
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Kind != "decision" {
			continue
		}
		callID := e.Fields["call_id"]
		decided[callID]++
		o := h.byID[callID]
		if o == nil || o.decision == "" {
			unknown++ // decided and logged in the audit log, killed before its log line
			continue
		}
		if e.Fields["decision"] != o.decision || e.Fields["number_mac"] != audit.NumberMAC(key, o.spec.e164()) {
			t.Errorf("audit entry of call %s: %v, want decision %s and the keyed hash of %s", callID, e.Fields, o.decision, o.spec.kind)
		}
	}
	if unknown > h.kills["agent"] {
		t.Errorf("%d audit decisions of calls whose decision the log never showed, more than the %d kills", unknown, h.kills["agent"])
	}
	n := 0
	for _, o := range h.calls {
		if o.decision == "" || o.decision == "invalid" {
			continue
		}
		n++
		if decided[o.id] != 1 {
			t.Errorf("call %s (%s) has %d decisions in the audit log", o.id, o.decision, decided[o.id])
		}
	}
	return int(sum.Entries), n
}

func (h *harness) identity(name string) age.Identity {
	b, err := os.ReadFile(filepath.Join(h.keys, name))
	if err != nil {
		h.t.Fatal(err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil || len(ids) != 1 {
		h.t.Fatalf("%s: %v", name, err)
	}
	return ids[0]
}

// devicePublic is the phone's public key, which it made at its first start and kept.
func (h *harness) devicePublic() ed25519.PublicKey {
	b, err := os.ReadFile(filepath.Join(h.data, "device.key"))
	if err != nil {
		h.t.Fatal(err)
	}
	k, err := identity.ParsePrivateKey(b)
	if err != nil {
		h.t.Fatal(err)
	}
	pub := k.Public().(ed25519.PublicKey)
	if identity.Fingerprint(pub) != h.deviceKey {
		h.t.Errorf("device key %s, the agent said %s", identity.Fingerprint(pub), h.deviceKey)
	}
	return pub
}

// spoolFiles lists the sealed files and purge requests left in the spool.
func (h *harness) spoolFiles() []string {
	var left []string
	for _, sub := range []string{"segments", "manifests", "purge"} {
		filepath.WalkDir(filepath.Join(h.data, "spool", sub), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				left = append(left, p)
			}
			return nil
		})
	}
	return left
}

func onlyRecord(c *vaultCall) bool {
	for name := range c.objects {
		if name != "record.age" {
			return false
		}
	}
	return true
}

func names(c *vaultCall) []string {
	var n []string
	for name := range c.objects {
		n = append(n, name)
	}
	sort.Strings(n)
	return n
}

// row is a line of the table: what, how many, what was checked of them.
type row struct {
	what  string
	count int
	check string
}

// table is the run in figures: calls by kind and outcome, kills, faults, and each invariant.
func (h *harness) table() string {
	var b strings.Builder
	kinds := map[string][4]int{}
	for _, o := range h.calls {
		if o.id == "" {
			continue
		}
		k := kinds[o.spec.kind]
		k[0]++
		if o.connected {
			k[1]++
		}
		if o.recordingStarted {
			k[2]++
		}
		if o.killed {
			k[3]++
		}
		kinds[o.spec.kind] = k
	}
	fmt.Fprintf(&b, "| calls | made | connected | recorded | cut by a kill |\n| --- | --- | --- | --- | --- |\n")
	for _, k := range []string{"recorded", "late", "privileged", "free", "blocked", "invalid"} {
		c := kinds[k]
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d |\n", k, c[0], c[1], c[2], c[3])
	}
	fmt.Fprintf(&b, "\n| kills and faults | count |\n| --- | --- |\n")
	for _, k := range sortedKeys(h.kills) {
		fmt.Fprintf(&b, "| kill -9 of the %s | %d |\n", k, h.kills[k])
	}
	for _, k := range sortedKeys(h.faults) {
		fmt.Fprintf(&b, "| %s | %d |\n", k, h.faults[k])
	}
	fmt.Fprintf(&b, "| agent runs | %d |\n| SIPp runs | %d |\n| console sessions started | %d |\n| back-office purge runs | %d, receipts %d |\n",
		h.runs, h.peers.started, h.consoleRuns, h.purgeRuns, h.receipts)
	for _, k := range sortedKeys(h.counts) {
		fmt.Fprintf(&b, "| %s | %d |\n", k, h.counts[k])
	}
	fmt.Fprintf(&b, "\n| invariant | count | checked |\n| --- | --- | --- |\n")
	for _, r := range h.rows {
		fmt.Fprintf(&b, "| %s | %d | %s |\n", r.what, r.count, r.check)
	}
	return b.String()
}

func sortedKeys(m map[string]int) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	slices.Sort(k)
	return k
}

func hexSum(b []byte) string {
	if b == nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
