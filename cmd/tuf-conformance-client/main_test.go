package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/wallphone/wallphone/tufclient/tuftest"
)

// suite runs the command as the conformance suite does: one metadata and one target folder
// per test, a repository served over HTTP, and the time the suite would fake.
type suite struct {
	t         *testing.T
	repo      *tuftest.Repo
	meta, tgt string
	now       time.Time
}

func newSuite(t *testing.T) *suite {
	r := tuftest.New(t, true)
	k := tuftest.NewKey(t)
	r.Delegate(metadata.TARGETS, "role-a", []tuftest.Key{k}, 1, false, "files/*")
	r.AddTarget("role-a", "files/a.txt", []byte("artifact a"), nil, "sha256", "sha512")
	r.AddTarget(metadata.TARGETS, "top.txt", []byte("top-level artifact"), nil)
	r.Publish()
	s := &suite{t: t, repo: r, meta: t.TempDir(), tgt: t.TempDir(), now: time.Now()}
	root := filepath.Join(t.TempDir(), "initial_root.json")
	os.WriteFile(root, r.RootJSON(), 0o600)
	s.want(0, "--metadata-dir", s.meta, "init", root)
	return s
}

// want runs the command and checks its exit status.
func (s *suite) want(status int, args ...string) string {
	s.t.Helper()
	var out, errb bytes.Buffer
	got := run(context.Background(), args, &out, &errb, func() (time.Time, error) { return s.now, nil })
	if got != status {
		s.t.Fatalf("%q: exit %d, want %d\nstdout: %s\nstderr: %s", args, got, status, out.String(), errb.String())
	}
	return out.String() + errb.String()
}

func (s *suite) refresh() []string {
	return []string{"--metadata-url", s.repo.Srv.URL + "/metadata", "--metadata-dir", s.meta, "refresh"}
}

func (s *suite) download(names ...string) []string {
	args := []string{"--metadata-url", s.repo.Srv.URL + "/metadata", "--metadata-dir", s.meta}
	for _, n := range names {
		args = append(args, "--target-name", n)
	}
	return append(args, "--target-dir", s.tgt, "--target-base-url", s.repo.Srv.URL+"/targets", "download")
}

// TestConformanceProtocol: init, refresh and download as CLIENT-CLI.md has them, against a
// repository with a delegated role.
func TestConformanceProtocol(t *testing.T) {
	s := newSuite(t)
	if len(s.repo.Requests()) != 0 {
		t.Fatalf("init made requests: %q", s.repo.Requests())
	}
	s.want(0, s.refresh()...)
	for _, role := range []string{"root", "timestamp", "snapshot", "targets"} {
		md, err := metadata.Targets().FromFile(filepath.Join(s.meta, role+".json"))
		if role == "targets" && (err != nil || md.Signed.Version != s.repo.Roles[role].Signed.Version) {
			t.Fatalf("trusted targets: %v", err)
		}
		if _, err := os.Stat(filepath.Join(s.meta, role+".json")); err != nil {
			t.Fatalf("no trusted %s under its plain name: %v", role, err)
		}
	}
	s.want(0, s.download("files/a.txt", "top.txt")...)
	for name, want := range map[string]string{"files%2Fa.txt": "artifact a", "top.txt": "top-level artifact"} {
		if b, err := os.ReadFile(filepath.Join(s.tgt, name)); err != nil || string(b) != want {
			t.Fatalf("%s: %q %v", name, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(s.meta, "role-a.json")); err != nil {
		t.Fatalf("the delegated role is not kept: %v", err)
	}
	// A second download finds the artifact in place and does not fetch it again.
	n := len(s.repo.Requests())
	if out := s.want(0, s.download("files/a.txt")...); !strings.Contains(out, "already downloaded") {
		t.Fatalf("not cached: %s", out)
	}
	for _, p := range s.repo.Requests()[n:] {
		if strings.HasPrefix(p, "/targets/") {
			t.Fatalf("fetched again: %s", p)
		}
	}
	// Targets are processed in order and the first failure stops the command.
	os.Remove(filepath.Join(s.tgt, "top.txt"))
	s.want(1, s.download("nonexistent", "top.txt")...)
	if _, err := os.Stat(filepath.Join(s.tgt, "top.txt")); err == nil {
		t.Fatal("a target after a failed one was downloaded")
	}
}

// TestConformanceRefused: what the client refuses exits 1 and leaves nothing behind.
func TestConformanceRefused(t *testing.T) {
	t.Run("target with wrong bytes", func(t *testing.T) {
		s := newSuite(t)
		tf := s.repo.Roles[metadata.TARGETS].Signed.Targets["top.txt"]
		s.repo.Serve("/targets/"+hex.EncodeToString(tf.Hashes["sha256"])+".top.txt", []byte("top-level artifacT"))
		s.want(1, s.download("top.txt")...)
		if _, err := os.Stat(filepath.Join(s.tgt, "top.txt")); err == nil {
			t.Fatal("wrong bytes kept")
		}
	})
	t.Run("expired at the reference time", func(t *testing.T) {
		s := newSuite(t)
		s.now = s.repo.Expires.Add(time.Minute)
		s.want(1, s.refresh()...)
		s.now = time.Now()
		s.want(0, s.refresh()...)
	})
	t.Run("timestamp rolled back", func(t *testing.T) {
		s := newSuite(t)
		old := s.repo.File("/metadata/timestamp.json")
		s.repo.Publish()
		s.want(0, s.refresh()...)
		s.repo.Serve("/metadata/timestamp.json", old)
		s.want(1, s.refresh()...)
	})
	t.Run("delegated role below its threshold", func(t *testing.T) {
		s := newSuite(t)
		s.repo.Signers["role-a"] = nil
		s.repo.Publish()
		if out := s.want(1, s.download("files/a.txt")...); !strings.Contains(out, "delegated role role-a") {
			t.Fatalf("does not name the role: %s", out)
		}
	})
	t.Run("unusual role name", func(t *testing.T) {
		s := newSuite(t)
		s.repo.Delegate(metadata.TARGETS, "../role-b", []tuftest.Key{tuftest.NewKey(t)}, 1, false, "*")
		s.repo.Publish()
		s.want(1, s.download("nonexistent target")...)
		if p := s.repo.MetadataPath("../role-b", 2); slices.Contains(s.repo.Requests(), p) {
			t.Fatalf("%s was asked for", p)
		}
	})
}

// TestConformanceUsage: the protocol's errors exit 1.
func TestConformanceUsage(t *testing.T) {
	s := newSuite(t)
	for _, args := range [][]string{
		nil,
		{"--metadata-dir", s.meta, "frobnicate"},
		{"refresh"},
		{"--metadata-dir", s.meta, "refresh"},
		{"--metadata-dir", s.meta, "init"},
		{"--metadata-dir", s.meta, "init", filepath.Join(t.TempDir(), "missing.json")},
		{"--metadata-dir", t.TempDir(), "--metadata-url", s.repo.Srv.URL + "/metadata", "refresh"},
		{"--metadata-dir", s.meta, "--metadata-url", "http://127.0.0.1:1/metadata", "refresh"},
		{"--metadata-dir", s.meta, "--metadata-url", s.repo.Srv.URL + "/metadata", "download"},
		{"--no-such-flag", "refresh"},
	} {
		s.want(1, args...)
	}
	// Flags after the command, as in the examples.
	s.want(0, "refresh", "--metadata-dir", s.meta, "--metadata-url", s.repo.Srv.URL+"/metadata")
}

// TestDateNow: the reference time is what date prints, which faketime fakes.
func TestDateNow(t *testing.T) {
	bin := t.TempDir()
	os.WriteFile(filepath.Join(bin, "date"), []byte("#!/bin/sh\necho 1700000000\n"), 0o755)
	t.Setenv("PATH", bin)
	if got, err := dateNow(); err != nil || !got.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("got %v %v", got, err)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := dateNow(); err == nil {
		t.Fatal("no date, no error")
	}
}
