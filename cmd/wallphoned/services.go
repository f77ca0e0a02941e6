package main

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/wallphone/wallphone/trunk"
)

// running is what every board's runner shares: the log, the agent, the trunk and what runs
// beside the call loop (the provisioning console and the uplink, neither of which can hold
// up a call).
type running struct {
	log        *slog.Logger
	a          *agent
	con        *console
	stopUplink func()
	stopTrunk  func()
	cancel     context.CancelFunc
	done       bool
}

// start opens the agent and starts the console and the uplink. A reset or reboot asked on
// the console cancels the returned context, which ends the agent as a signal would.
func start(ctx context.Context, cfg config, stdout io.Writer) (context.Context, *running, error) {
	log, ring := withRing(newLogger(cfg.logMode, stdout))
	a, err := openAgent(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	con, err := startConsole(ctx, cfg, a, ring, log, cancel)
	if err != nil {
		cancel()
		a.close()
		return nil, nil, err
	}
	r := &running{log: log, a: a, con: con, stopUplink: startUplink(ctx, cfg, a), cancel: cancel}
	return ctx, r, nil
}

// trunk is the facility's SIP trunk with --trunk sip, else the simulated called party that
// sim makes.
func (r *running) trunk(cfg config, sim func() trunk.Trunk) trunk.Trunk {
	if cfg.trunk != "sip" {
		return sim()
	}
	t, stop := openSIPTrunk(cfg, r.log)
	r.stopTrunk = stop
	return t
}

// finish stops what runs beside the call loop and the trunk, closes the data directory (and
// wipes it after a factory reset confirmed on the console) and says so. The call loop must
// be over. A second call does nothing, so that it can also be deferred for early returns.
func (r *running) finish(err error) error {
	if r.done {
		return err
	}
	r.done = true
	r.con.stop()
	r.stopUplink()
	r.cancel()
	if r.stopTrunk != nil {
		r.stopTrunk()
	}
	if cerr := r.a.close(); cerr != nil {
		r.log.Error("closing the data directory", "event", "agent_error", "err", cerr)
		err = errors.Join(err, cerr)
	}
	err = errors.Join(err, r.con.afterClose())
	r.log.Info("agent stopped", "event", "agent_stopped")
	return err
}
