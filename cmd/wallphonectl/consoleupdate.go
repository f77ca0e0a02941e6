package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wallphone/wallphone/provisioning"
)

// updateDir checks the arguments of console update: one folder holding a repository as the
// back office publishes it (metadata/ and targets/).
func updateDir(args []string) (string, error) {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		return "", fmt.Errorf("%w: update IMAGE-DIR (a copy of the repository: metadata/ and targets/)", errUsage)
	}
	dir := args[0]
	for _, sub := range []string{"metadata", "targets"} {
		fi, err := os.Stat(filepath.Join(dir, sub))
		if err != nil || !fi.IsDir() {
			return "", fmt.Errorf("%s is not a copy of the repository: it has no %s/ folder (copy the folder the back office publishes, as wallphonectl firmware publish --repo writes it)", dir, sub)
		}
	}
	return dir, nil
}

func (c *consoleCmd) doUpdate(ctx context.Context, args []string) error {
	dir, err := updateDir(args)
	if err != nil {
		return err
	}
	// The phone reads only below this folder, and nothing a link in it points to outside.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	bar := newUpdateBar(c.stdout, isTerminal(c.stdout), time.Now)
	u, err := c.client.Update(ctx, root.FS(), bar.show)
	bar.end()
	if errors.Is(err, provisioning.ErrTimeout) {
		return &exitError{exitNoPhone, fmt.Errorf("%w: the phone keeps what it installed; plug the cable in again and run the same console update: it goes on from there", err)}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "installed:       %s (version %d) in slot %s, %s\n", u.Image, u.Version, u.Slot, byteSize(u.Length))
	fmt.Fprintf(c.stdout, "over the cable:  %s (copied from the running slot: %s; already there from an earlier run: %s)\n",
		byteSize(u.Fetched), byteSize(u.Copied), byteSize(u.Resumed))
	fmt.Fprintf(c.stdout, "next:            %s\n", u.Next)
	return nil
}

// updateBar shows an update's progress: the image's bytes in the phone's slot out of its
// length, the rate at which bytes cross the cable, and the time left at the pace so far. On
// a terminal it is one line that redraws itself; elsewhere a plain line at each stage and
// every tenth of the image.
type updateBar struct {
	w      io.Writer
	redraw bool
	now    func() time.Time
	start  time.Time
	// what was shown last: the stage, and the tenth for plain lines
	stage string
	tenth int64
	drawn bool
	// when the image's progress started counting, and from what
	from     time.Time
	fromDone int64
}

func newUpdateBar(w io.Writer, redraw bool, now func() time.Time) *updateBar {
	return &updateBar{w: w, redraw: redraw, now: now, start: now(), tenth: -1}
}

func (b *updateBar) show(s provisioning.UpdateStatus) {
	now := b.now()
	if s.Stage == "installing" && b.from.IsZero() {
		b.from, b.fromDone = now, s.Done
	}
	line := b.line(s, now)
	if b.redraw {
		fmt.Fprintf(b.w, "\r\033[K%s", line)
		b.drawn = true
		return
	}
	tenth := int64(-1)
	if s.Total > 0 {
		tenth = s.Done * 10 / s.Total
	}
	if s.Stage == b.stage && tenth == b.tenth {
		return
	}
	b.stage, b.tenth = s.Stage, tenth
	fmt.Fprintln(b.w, line)
}

// line is what the bar says at now.
func (b *updateBar) line(s provisioning.UpdateStatus, now time.Time) string {
	if s.Stage != "installing" || s.Total <= 0 {
		return fmt.Sprintf("checking the repository's signed metadata (%s sent)", byteSize(s.Sent))
	}
	const width = 24
	n := int(s.Done * width / s.Total)
	line := fmt.Sprintf("installing [%s%s] %3d%%  %s of %s", strings.Repeat("#", n), strings.Repeat(".", width-n),
		s.Done*100/s.Total, byteSize(s.Done), byteSize(s.Total))
	if el := now.Sub(b.start); el >= time.Second {
		line += fmt.Sprintf("  %s/s over the cable", byteSize(int64(float64(s.Sent)/el.Seconds())))
	}
	if el := now.Sub(b.from); el >= time.Second && s.Done > b.fromDone {
		left := time.Duration(float64(s.Total-s.Done) / float64(s.Done-b.fromDone) * float64(el))
		line += fmt.Sprintf("  about %s left", left.Round(time.Second))
	}
	return line
}

func (b *updateBar) end() {
	if b.drawn {
		fmt.Fprintln(b.w)
	}
}

// byteSize writes a byte count for people.
func byteSize(n int64) string {
	switch {
	case n >= 10<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 10<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
