package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.bug.st/serial"
	"golang.org/x/term"

	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/provisioning"
)

// Exit statuses of wallphonectl console, for scripts (the README's technician page lists
// them too).
const (
	exitOK          = 0
	exitLocal       = 1 // a local problem: a file missing or unreadable
	exitUsage       = 2 // the command line was not understood
	exitNoPhone     = 3 // the port does not open, or the phone does not answer
	exitAuth        = 4 // the phone refused the certificate or the key
	exitLocked      = 5 // the phone makes you wait after failed sign-ins, or is locked (the message says which, and how long)
	exitRefused     = 6 // the phone refused or failed the command (the message says why)
	exitSelftest    = 7 // the self test ran and found a fault
	exitNotConfirmd = 8 // a factory reset was not confirmed; nothing was done
)

// exitError carries an exit status other than 1 and 2 up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// classify gives an error from the console its exit status.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) || errors.Is(err, errUsage) {
		return err
	}
	var pe *provisioning.Error
	switch {
	case errors.Is(err, provisioning.ErrTimeout):
		return &exitError{exitNoPhone, fmt.Errorf("%w (check the cable, the port, --baud, and that the agent runs with --console)", err)}
	case errors.As(err, &pe) && (pe.Code == provisioning.CodeAuthFailed || pe.Code == provisioning.CodeNotAuthenticated):
		return &exitError{exitAuth, fmt.Errorf("refused: %w", err)}
	case errors.As(err, &pe) && (pe.Code == provisioning.CodeLocked || pe.Code == provisioning.CodeBackoff):
		// The phone's message says whether it is a wait after a failure or a lock.
		return &exitError{exitLocked, fmt.Errorf("not signed in: %w", err)}
	case errors.As(err, &pe):
		return &exitError{exitRefused, fmt.Errorf("the phone refused: %w", err)}
	}
	return err
}

const consoleUsage = `usage:
  wallphonectl console --port DEV [--baud N] [--timeout D] --cert FILE --key FILE COMMAND
      hello                    who the phone is (no certificate needed)
      status                   registry and policy versions, spool, uplink, the last calls (no numbers)
      selftest                 the checks the phone can make with nobody at the handset
      logs [--lines N]         the agent's last log lines (numbers removed)
      enroll --conf DIR        install DIR's files (root.json, repository.json, recipients.txt,
                               audit.key, vault.json, sip.json) and give the phone a new key
      reset [--yes]            factory reset: wipe keys, configuration, state and spool
      reboot                   restart the phone's agent
      update IMAGE-DIR         install firmware from a copy of the repository (metadata/ and
                               targets/); only the blocks the phone lacks cross the cable
      shell                    interactive: a prompt taking the commands above, and help
  wallphonectl console cert --provisioning-key FILE --facility ID --name NAME
                            --technician-pub FILE [--valid 30d] [--serial N] --out FILE
                            a technician's certificate, signed with the facility's provisioning key
  wallphonectl keys provisioning --facility ID --out PREFIX
  wallphonectl keys technician --out PREFIX
exit status: 0 done, 1 local error, 2 usage, 3 no answer from the phone, 4 certificate or key
refused, 5 wait after failed sign-ins or console locked, 6 command refused by the phone,
7 self test found a fault, 8 reset not confirmed`

// consoleCmd is one invocation of wallphonectl console.
type consoleCmd struct {
	stdin  *bufio.Scanner
	stdout io.Writer
	stderr io.Writer
	client *provisioning.Client
	// port, baud and timeout are the command line's: what the first hello tries, for how long.
	port    string
	baud    int
	timeout time.Duration
	// attemptEvery is how long one hello waits before it is sent again.
	attemptEvery time.Duration
	// spin: stderr is a terminal, where the wait is a spinner line that redraws itself.
	spin  bool
	cert  []byte
	key   ed25519.PrivateKey
	hello provisioning.Hello
	// facility is the signed-in certificate's: the one an enrolment puts the phone in.
	facility string
}

func consoleMain(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "cert" {
		return consoleCert(args[1:], stdout)
	}
	fs := flag.NewFlagSet("console", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	port := fs.String("port", "/dev/ttyUSB0", "serial port")
	baud := fs.Int("baud", 115200, "serial speed")
	certFile := fs.String("cert", "", "technician certificate")
	keyFile := fs.String("key", "", "technician key")
	timeout := fs.Duration("timeout", provisioning.DefaultTimeout, "wait for each answer")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, consoleUsage)
		return nil
	} else if err != nil {
		return fmt.Errorf("%w: console: %v", errUsage, err)
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: console: no command", errUsage)
	}
	sub, subArgs := fs.Arg(0), fs.Args()[1:]
	// Check the subcommand before reading files or touching the port.
	if _, ok := consoleCommands[sub]; !ok && sub != "shell" {
		return fmt.Errorf("%w: console: unknown command %q", errUsage, sub)
	}
	if sub == "update" {
		// A wrong folder is found before the technician waits for the phone.
		if _, err := updateDir(subArgs); err != nil {
			return err
		}
	}
	c := &consoleCmd{stdin: bufio.NewScanner(stdin), stdout: stdout, stderr: stderr,
		port: *port, baud: *baud, timeout: *timeout, attemptEvery: attemptEvery, spin: isTerminal(stderr)}
	if sub != "hello" {
		if *certFile == "" || *keyFile == "" {
			return fmt.Errorf("%w: console %s needs --cert FILE and --key FILE", errUsage, sub)
		}
		var err error
		if c.cert, err = os.ReadFile(*certFile); err != nil {
			return err
		}
		if _, err := provisioning.ParseCertificate(c.cert); err != nil {
			return fmt.Errorf("%s: %w", *certFile, err)
		}
		kb, err := os.ReadFile(*keyFile)
		if err != nil {
			return err
		}
		if c.key, err = identity.ParsePrivateKey(kb); err != nil {
			return fmt.Errorf("%s: %w", *keyFile, err)
		}
	}
	p, err := serial.Open(*port, &serial.Mode{BaudRate: *baud})
	if err != nil {
		return &exitError{exitNoPhone, fmt.Errorf("open %s: %w", *port, err)}
	}
	c.client = provisioning.NewClient(p)
	c.client.Timeout = *timeout
	defer c.client.Close()
	ctx := context.Background()
	if sub == "hello" {
		return classify(c.doHello(ctx, subArgs))
	}
	if err := c.login(ctx); err != nil {
		return classify(err)
	}
	if sub == "shell" {
		return classify(c.shell(ctx))
	}
	err = c.run(ctx, sub, subArgs)
	if sub != "reset" && sub != "reboot" {
		// The phone forgets the session at once, rather than after its idle timeout.
		c.client.Bye(ctx)
	}
	return classify(err)
}

func (c *consoleCmd) login(ctx context.Context) error {
	h, err := c.reach(ctx)
	if err != nil {
		return err
	}
	c.hello = h
	ok, err := c.client.AnswerChallenge(ctx, provisioning.Auth{Certificate: c.cert,
		Signature: ed25519.Sign(c.key, provisioning.AuthMessage(h.DeviceID, h.Challenge))})
	if err != nil {
		return err
	}
	c.facility = ok.Facility
	fac := h.Facility
	if fac == "" {
		fac = "not enrolled"
	}
	fmt.Fprintf(c.stderr, "phone %s (key %s, %s); signed in as %s of %s until %s\n",
		h.DeviceID, h.KeyFingerprint, fac, ok.Technician, ok.Facility, ok.NotAfter.UTC().Format(time.DateOnly))
	return nil
}

var consoleCommands = map[string]func(c *consoleCmd, ctx context.Context, args []string) error{
	"hello":    (*consoleCmd).doHello,
	"status":   (*consoleCmd).doStatus,
	"selftest": (*consoleCmd).doSelftest,
	"logs":     (*consoleCmd).doLogs,
	"enroll":   (*consoleCmd).doEnroll,
	"reset":    (*consoleCmd).doReset,
	"reboot":   (*consoleCmd).doReboot,
	"update":   (*consoleCmd).doUpdate,
}

func (c *consoleCmd) run(ctx context.Context, sub string, args []string) error {
	f, ok := consoleCommands[sub]
	if !ok {
		return fmt.Errorf("%w: unknown command %q", errUsage, sub)
	}
	return f(c, ctx, args)
}

func noArgs(name string, args []string) error {
	if len(args) != 0 {
		return fmt.Errorf("%w: %s takes no arguments", errUsage, name)
	}
	return nil
}

func (c *consoleCmd) doHello(ctx context.Context, args []string) error {
	if err := noArgs("hello", args); err != nil {
		return err
	}
	h, err := c.reach(ctx)
	if err != nil {
		return err
	}
	fac := h.Facility
	if fac == "" {
		fac = "(not enrolled)"
	}
	fmt.Fprintf(c.stdout, "device id:       %s\nfirmware:        %s\ndevice key:      %s\npublic key:      %x\nfacility:        %s\n",
		h.DeviceID, h.Firmware, h.KeyFingerprint, h.DeviceKey, fac)
	return nil
}

func (c *consoleCmd) doStatus(ctx context.Context, args []string) error {
	if err := noArgs("status", args); err != nil {
		return err
	}
	s, err := c.client.Status(ctx)
	if err != nil {
		return err
	}
	fac := s.Facility
	if fac == "" {
		fac = "(not enrolled)"
	}
	age := s.RegistryAge
	if age == "" {
		age = "unknown"
	}
	w := c.stdout
	fmt.Fprintf(w, "device id:       %s\nfacility:        %s\npolicy version:  %d\nregistry:        version %d, %s\n",
		s.DeviceID, fac, s.PolicyVersion, s.RegistryVersion, age)
	fmt.Fprintf(w, "spool:           %d calls, %d segments, %d bytes not yet upstream\nuplink:          %s\n",
		s.SpoolCalls, s.SpoolSegments, s.SpoolBytes, s.Uplink)
	if s.SIP != "" {
		fmt.Fprintf(w, "sip:             %s\n", s.SIP)
	}
	if s.Firmware != "" {
		fmt.Fprintf(w, "firmware:        %s\n", s.Firmware)
	}
	fmt.Fprintf(w, "last calls:      %d\n", len(s.Calls))
	for _, cl := range s.Calls {
		rec := "not recorded"
		if cl.Recorded {
			rec = "recorded"
		}
		fmt.Fprintf(w, "  %s  %s  %8s  %-10s %-12s %s\n", cl.Started.UTC().Format(time.DateTime), cl.CallID,
			cl.Duration.Round(time.Second), cl.Decision, rec, cl.EndReason)
	}
	return nil
}

func (c *consoleCmd) doSelftest(ctx context.Context, args []string) error {
	if err := noArgs("selftest", args); err != nil {
		return err
	}
	checks, err := c.client.Selftest(ctx)
	if err != nil {
		return err
	}
	failed := 0
	for _, ch := range checks {
		mark := "ok  "
		if !ch.OK {
			mark = "FAIL"
			failed++
		}
		fmt.Fprintf(c.stdout, "%s  %-24s %s\n", mark, ch.Name, ch.Detail)
	}
	if failed > 0 {
		return &exitError{exitSelftest, fmt.Errorf("self test: %d of %d checks failed", failed, len(checks))}
	}
	return nil
}

func (c *consoleCmd) doLogs(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	n := fs.Int("lines", 50, "how many lines")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return fmt.Errorf("%w: logs [--lines N]", errUsage)
	}
	lines, err := c.client.Logs(ctx, *n)
	if err != nil {
		return err
	}
	for _, l := range lines {
		fmt.Fprintln(c.stdout, l)
	}
	return nil
}

func (c *consoleCmd) doEnroll(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("conf", "", "directory of configuration items")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || *dir == "" {
		return fmt.Errorf("%w: enroll --conf DIR", errUsage)
	}
	ents, err := os.ReadDir(*dir)
	if err != nil {
		return err
	}
	items := map[string][]byte{}
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(*dir, e.Name()))
		if err != nil {
			return err
		}
		if e.Name() == "facility" {
			// The phone takes its facility from the certificate, never from a file; a
			// facility's directory (the demo's enrol/) may still name it, and must agree.
			if f := strings.TrimSpace(string(b)); f != c.facility {
				return fmt.Errorf("%s names facility %q, but your certificate is for %q: the phone is enrolled in the certificate's facility",
					filepath.Join(*dir, e.Name()), f, c.facility)
			}
			continue
		}
		items[e.Name()] = b
	}
	if len(items) == 0 {
		return fmt.Errorf("%s holds no configuration items", *dir)
	}
	bar := progressBar{w: c.stderr, label: "uploading"}
	res, err := c.client.Enroll(ctx, items, bar.show)
	bar.end()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "enrolled in:     %s\nnew device key:  %s\ninstalled:       %s\n",
		res.Facility, res.KeyFingerprint, strings.Join(res.Installed, ", "))
	fmt.Fprintln(c.stdout, "restart the phone (reboot) for it to use its new key and configuration")
	return nil
}

func (c *consoleCmd) doReset(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("reset", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	yes := fs.Bool("yes", false, "do not ask")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return fmt.Errorf("%w: reset [--yes]", errUsage)
	}
	done, err := c.client.Reset(ctx, func(a provisioning.ResetAnswer) bool {
		fmt.Fprintf(c.stdout, "factory reset of %s wipes its key, configuration, state and spool;\n%d recorded calls not yet upstream will be lost.\n", c.hello.DeviceID, a.Unsent)
		if *yes {
			return true
		}
		fmt.Fprintf(c.stdout, "type the device id to confirm: ")
		if !c.stdin.Scan() {
			return false
		}
		return strings.TrimSpace(c.stdin.Text()) == c.hello.DeviceID
	})
	if err != nil {
		return err
	}
	if !done {
		return &exitError{exitNotConfirmd, errors.New("reset not confirmed; nothing was done")}
	}
	fmt.Fprintln(c.stdout, "the phone is wiping itself and restarting")
	return nil
}

func (c *consoleCmd) doReboot(ctx context.Context, args []string) error {
	if err := noArgs("reboot", args); err != nil {
		return err
	}
	if err := c.client.Reboot(ctx); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "the phone restarts")
	return nil
}

// shell is the interactive mode: one session, a prompt, the same commands.
func (c *consoleCmd) shell(ctx context.Context) error {
	for {
		fmt.Fprintf(c.stdout, "%s> ", c.hello.DeviceID)
		if !c.stdin.Scan() {
			fmt.Fprintln(c.stdout)
			c.client.Bye(ctx)
			return c.stdin.Err()
		}
		fields := strings.Fields(c.stdin.Text())
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "help", "?":
			fmt.Fprintln(c.stdout, "commands: hello, status, selftest, logs [--lines N], enroll --conf DIR, update IMAGE-DIR, reset [--yes], reboot, quit")
			continue
		case "quit", "exit":
			return c.client.Bye(ctx)
		}
		err := c.run(ctx, fields[0], fields[1:])
		var pe *provisioning.Error
		if errors.As(err, &pe) && pe.Code == provisioning.CodeNotAuthenticated {
			// The session timed out while the technician was busy: sign in again once.
			if err = c.login(ctx); err == nil {
				err = c.run(ctx, fields[0], fields[1:])
			}
		}
		if err != nil {
			fmt.Fprintln(c.stdout, "error:", classify(err))
			if errors.Is(err, provisioning.ErrTimeout) {
				return classify(err)
			}
			continue
		}
		if fields[0] == "reset" || fields[0] == "reboot" {
			return nil
		}
	}
}

// attemptEvery is how long a hello waits before it is sent again: a phone whose agent starts
// meanwhile, or a line that garbled the first frame, answers the next.
const attemptEvery = 2 * time.Second

// reach says hello until the phone answers or the timeout passes, showing what it tries: a
// technician at a phone that does not answer must see that something is going on, and on
// giving up, what to check.
func (c *consoleCmd) reach(ctx context.Context) (provisioning.Hello, error) {
	attempts := max(1, int((c.timeout+c.attemptEvery-1)/c.attemptEvery))
	c.client.Timeout = c.timeout / time.Duration(attempts)
	defer func() { c.client.Timeout = c.timeout }()
	line := fmt.Sprintf("%s at %d baud", c.port, c.baud)
	for n := 1; n <= attempts; n++ {
		stop := c.spinner(fmt.Sprintf("waiting for the phone on %s (attempt %d of %d)", line, n, attempts))
		h, err := c.client.Hello(ctx)
		stop()
		if !errors.Is(err, provisioning.ErrTimeout) {
			return h, err
		}
		if !c.spin {
			fmt.Fprintf(c.stderr, "no answer from the phone on %s (attempt %d of %d)\n", line, n, attempts)
		}
	}
	return provisioning.Hello{}, &exitError{exitNoPhone, fmt.Errorf(
		"%w on %s after %d attempts in %s; check that the cable is in and the phone is on, that %s is the phone's port (dmesg | tail), that --baud %d is the phone's --console-baud, and that its agent runs with --console",
		provisioning.ErrTimeout, line, attempts, c.timeout, c.port, c.baud)}
}

// spinner draws text behind a turning bar on a terminal until stop is called, which erases
// the line; elsewhere it draws nothing.
func (c *consoleCmd) spinner(text string) (stop func()) {
	if !c.spin {
		return func() {}
	}
	done, drawn := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(drawn)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		// Nothing is drawn for an answer within the first tick, so a phone that answers
		// at once does not make the line flicker.
		for i := 0; ; i++ {
			select {
			case <-done:
				if i > 0 {
					fmt.Fprint(c.stderr, "\r\033[K")
				}
				return
			case <-t.C:
				fmt.Fprintf(c.stderr, "\r%c %s", `|/-\`[i%4], text)
			}
		}
	}()
	return func() { close(done); <-drawn }
}

// isTerminal says whether w is a terminal, where a line may redraw itself.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressBar draws one line that redraws itself.
type progressBar struct {
	w     io.Writer
	label string
	drawn bool
}

func (p *progressBar) show(done, total int) {
	const width = 30
	n := width
	pct := 100
	if total > 0 {
		n, pct = done*width/total, done*100/total
	}
	fmt.Fprintf(p.w, "\r%s [%s%s] %3d%%  %d/%d bytes", p.label, strings.Repeat("#", n), strings.Repeat(".", width-n), pct, done, total)
	p.drawn = true
}

func (p *progressBar) end() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

// consoleCert issues a technician certificate with a facility's provisioning key.
func consoleCert(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("console cert", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	provKey := fs.String("provisioning-key", "", "the facility's provisioning key")
	facility := fs.String("facility", "", "facility id")
	name := fs.String("name", "", "the technician's name")
	techPub := fs.String("technician-pub", "", "the technician's public key file (from keys technician)")
	valid := fs.String("valid", "30d", "validity from now: Nd or a Go duration")
	serial := fs.Uint64("serial", 0, "serial number (default: the current Unix time)")
	out := fs.String("out", "", "certificate file to write")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || *provKey == "" || *facility == "" || *name == "" || *techPub == "" || *out == "" {
		return fmt.Errorf("%w: console cert --provisioning-key FILE --facility ID --name NAME --technician-pub FILE [--valid 30d] [--serial N] --out FILE", errUsage)
	}
	d, err := parseValidity(*valid)
	if err != nil {
		return fmt.Errorf("%w: --valid: %v", errUsage, err)
	}
	kb, err := os.ReadFile(*provKey)
	if err != nil {
		return err
	}
	key, err := identity.ParsePrivateKey(kb)
	if err != nil {
		return fmt.Errorf("%s: %w", *provKey, err)
	}
	pb, err := os.ReadFile(*techPub)
	if err != nil {
		return err
	}
	pub, err := parsePublicKey(pb)
	if err != nil {
		return fmt.Errorf("%s: %w", *techPub, err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	if *serial == 0 {
		*serial = uint64(now.Unix())
	}
	body := provisioning.CertBody{Serial: *serial, Name: *name, Facility: *facility, PublicKey: pub,
		NotBefore: now.Add(-5 * time.Minute), NotAfter: now.Add(d)}
	cert, err := provisioning.IssueCertificate(body, key)
	if err != nil {
		return err
	}
	if err := writeNew(*out, cert, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: certificate %d for %s of %s, key %s, valid until %s\n", *out, body.Serial, body.Name,
		body.Facility, identity.Fingerprint(pub), body.NotAfter.Format(time.RFC3339))
	return nil
}

func parseValidity(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, err
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, err
		}
	}
	if d <= 0 || d > 366*24*time.Hour {
		return 0, fmt.Errorf("%s: between a second and a year", s)
	}
	return d, nil
}

const pubPrefix = "ed25519:"

func parsePublicKey(b []byte) (ed25519.PublicKey, error) {
	s := strings.TrimSpace(string(b))
	k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, pubPrefix))
	if !strings.HasPrefix(s, pubPrefix) || err != nil || len(k) != ed25519.PublicKeySize {
		return nil, errors.New("not an ed25519:BASE64 public key")
	}
	return k, nil
}

// keysPair makes an Ed25519 key pair: PREFIX.key (0600) and PREFIX.pub, whose line it prints.
func keysPair(kind string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keys "+kind, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	out := fs.String("out", "", "file name prefix")
	facility := ""
	if kind == "provisioning" {
		fs.StringVar(&facility, "facility", "", "the facility the key vouches for")
	}
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || *out == "" || (kind == "provisioning" && facility == "") {
		if kind == "provisioning" {
			return fmt.Errorf("%w: keys provisioning --facility ID --out PREFIX", errUsage)
		}
		return fmt.Errorf("%w: keys technician --out PREFIX", errUsage)
	}
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	pem, err := identity.MarshalPrivateKey(key)
	if err != nil {
		return err
	}
	line := pubPrefix + base64.StdEncoding.EncodeToString(pub)
	if kind == "provisioning" {
		line = provisioning.PublicKeyLine(facility, pub)
	}
	if err := writeNew(*out+".key", pem, 0o600); err != nil {
		return err
	}
	if err := writeNew(*out+".pub", []byte(line+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(stdout, line)
	return nil
}
