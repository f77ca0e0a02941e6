package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/wallphone/wallphone/firmware/release"
	"github.com/wallphone/wallphone/provisioning"
	"github.com/wallphone/wallphone/tufclient"
)

// consoleUpdater installs firmware from a technician's copy of the repository, carried by
// the console (wallphonectl console update): the same signed metadata as over the network,
// verified the same way from the phone's own trusted metadata, and only the blocks the
// phone lacks cross the line.
type consoleUpdater struct{ a *Agent }

var _ provisioning.Updater = consoleUpdater{}

// consoleURL is the base URL of the repository the console carries; the transport takes the
// file names from what the client makes of it.
const consoleURL = "console:"

// consoleTUFDir is where a console update keeps its copy of the phone's trusted metadata:
// the update goroutine's client keeps the original, and two clients never write one
// directory.
const consoleTUFDir = "console"

// maxConsoleFile bounds a metadata file or block index read whole over the console.
const maxConsoleFile = 64 << 20

func refused(format string, args ...any) error {
	return &provisioning.Error{Code: provisioning.CodeRefused, Message: fmt.Sprintf(format, args...)}
}

// Update verifies the technician's repository against the phone's trusted metadata, picks
// the release as a network update would, and installs it into the inactive slot; the phone
// then reboots into it when idle, on trial, as after a network install. Whatever it refuses
// or fails on, the running firmware stays, and an install cut short resumes at the next
// update from the network or the console.
func (u consoleUpdater) Update(ctx context.Context, repo provisioning.Repo) (provisioning.Updated, error) {
	a := u.a
	fw := a.fw
	if fw == nil {
		return provisioning.Updated{}, refused("this phone has no firmware slots to update")
	}
	root, err := os.ReadFile(filepath.Join(a.cfg.DataDir, "conf", provisioning.RootFile))
	if err != nil || a.facility == "" {
		return provisioning.Updated{}, refused("this phone is not enrolled with a repository: it has no trusted root to verify firmware against (enrol it first)")
	}
	// A network install holds the lock for as long as it runs; the technician is told
	// rather than kept waiting on the line.
	if !fw.mu.TryLock() {
		return provisioning.Updated{}, refused("a firmware install from the network is under way: try again once it is done (status says how far it is)")
	}
	defer fw.mu.Unlock()
	switch p := fw.st.Pending; {
	case fw.trial && p != nil:
		return provisioning.Updated{}, refused("version %d runs on trial and is not committed yet: the other slot is the phone's way back, and is not written until then", p.Version)
	case p != nil || a.rebootWanted.Load():
		return provisioning.Updated{}, refused("new firmware is installed and waits for the phone to reboot into it when idle")
	}
	a.log.Info("firmware update from the console", "event", "firmware_console_update")
	repo.Progress(provisioning.UpdateProgress{Stage: "metadata"})
	src, cleanup, err := a.consoleSource(root, repo)
	if err != nil {
		return provisioning.Updated{}, err
	}
	defer cleanup()
	if _, err := src.Refresh(ctx); err != nil {
		return provisioning.Updated{}, refused("the repository does not verify against this phone's trusted metadata; nothing was installed: %v", err)
	}
	rel, choice, err := a.installRelease(ctx, src, func(done, total int64) {
		repo.Progress(provisioning.UpdateProgress{Stage: "installing", Done: done, Total: total})
	})
	if err != nil {
		a.log.Error("firmware from the console not installed; the running firmware stays", "event", "firmware_error", "err", err)
		return provisioning.Updated{}, refused("not installed; the running firmware stays: %v", err)
	}
	if rel == nil {
		return provisioning.Updated{}, refused("%s", noRelease(choice, fw.st.Committed))
	}
	res := rel.Result
	return provisioning.Updated{Image: rel.Image, Version: rel.Version, Slot: rel.Slot, Length: res.Length,
		Fetched: res.Fetched, Copied: res.Copied, Resumed: res.Resumed,
		Next: fmt.Sprintf("the phone reboots into version %d in slot %s when idle, on trial: it commits once healthy, and boots the running firmware again if not", rel.Version, rel.Slot),
	}, nil
}

// noRelease says why the technician's repository has nothing this phone installs.
func noRelease(choice release.Choice, committed uint64) string {
	if len(choice.Skipped) == 0 {
		return "the repository holds no firmware release"
	}
	var why []string
	for _, s := range choice.Skipped {
		why = append(why, fmt.Sprintf("%s: %v", s.Target, s.Err))
	}
	return fmt.Sprintf("no release in the repository for this phone (committed version %d): %s", committed, strings.Join(why, "; "))
}

// consoleSource is a client of the repository the console carries, whose trusted metadata
// starts as a copy of the phone's: what the phone trusts bars older versions and roots
// alike, and the update goroutine's own directory is never written by it. cleanup removes
// the copy.
func (a *Agent) consoleSource(root []byte, repo provisioning.Repo) (*tufclient.Client, func(), error) {
	trusted := filepath.Join(a.cfg.DataDir, "tuf")
	dir := filepath.Join(trusted, consoleTUFDir)
	if err := os.RemoveAll(dir); err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	if err := copyMetadata(trusted, dir); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("copy the trusted metadata: %w", err)
	}
	src, err := tufclient.New(tufclient.Options{Dir: dir, Root: root, URL: consoleURL,
		Transport: consoleTransport{repo}, TopLevelOnlyDelegates: true, Now: a.clock.Now})
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return src, cleanup, nil
}

// copyMetadata copies the metadata files of from (not its folders: targets, or an earlier
// copy) into to. go-tuf replaces its files by renaming, so each is read whole, old or new.
// The copy is scratch, removed after the update and at the next one's start: written plainly,
// not synced to flash file by file.
func copyMetadata(from, to string) error {
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	ents, err := os.ReadDir(from)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), "tuf_tmp") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// consoleTransport carries the client's downloads over the console.
type consoleTransport struct{ repo provisioning.Repo }

// name is the repository file a URL of consoleURL names.
func (consoleTransport) name(raw string) (string, error) {
	rest, ok := strings.CutPrefix(raw, consoleURL+"/")
	if !ok {
		return "", fmt.Errorf("not a console URL: %q", raw)
	}
	return url.PathUnescape(rest)
}

func (t consoleTransport) Open(ctx context.Context, raw string) (io.ReadCloser, error) {
	name, err := t.name(raw)
	if err != nil {
		return nil, err
	}
	b, err := t.repo.ReadFile(ctx, name, maxConsoleFile)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// OpenRange streams the range as it crosses the line, so that the blocks that came whole
// before a cable was pulled are kept.
func (t consoleTransport) OpenRange(ctx context.Context, raw string, off, n, length int64) (io.ReadCloser, error) {
	name, err := t.name(raw)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	rc := &rangeReader{PipeReader: pr}
	rc.wg.Go(func() {
		pw.CloseWithError(t.repo.ReadRange(ctx, name, off, n, length, pw))
	})
	return rc, nil
}

// rangeReader is a range being read over the console; Close stops the read and waits for it.
type rangeReader struct {
	*io.PipeReader
	wg sync.WaitGroup
}

func (r *rangeReader) Close() error {
	err := r.PipeReader.Close()
	r.wg.Wait()
	if errors.Is(err, io.ErrClosedPipe) {
		err = nil
	}
	return err
}
