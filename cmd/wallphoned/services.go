package main

import (
	"context"
	"log/slog"
)

// services are what runs beside the call loop on every board: the provisioning console and
// the uplink. Neither can hold up a call.
type services struct {
	con        *console
	stopUplink func()
	cancel     context.CancelFunc
}

// startServices starts the console and the uplink. A reset or reboot asked on the console
// cancels the returned context, which ends the agent as a signal would.
func startServices(ctx context.Context, cfg config, a *agent, ring *logRing, log *slog.Logger) (context.Context, *services, error) {
	ctx, cancel := context.WithCancel(ctx)
	con, err := startConsole(ctx, cfg, a, ring, log, cancel)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return ctx, &services{con: con, stopUplink: startUplink(ctx, cfg, a), cancel: cancel}, nil
}

// stop ends both and waits for them; it may be called more than once.
func (s *services) stop() {
	s.con.stop()
	s.stopUplink()
	s.cancel()
}
