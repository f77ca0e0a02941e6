// Package chaos holds the whole-system fault test (issue 18): the real agent on the simulated
// phone, calling real SIP peers (SIPp), shipping to a real S3 server (versitygw) through a
// proxy that injects faults, fetching its rules from a repository served over HTTP by a
// process of its own, and signed in to over a real pseudo-terminal; its firmware updated in
// the middle of it all (the simulated board's two slots and bootloader); all of it killed
// with SIGKILL on a seeded schedule, and the promises checked from outside at the end.
//
// The package has no code of its own: everything is in its tests. TestChaos is the short
// form that make test runs; make chaos runs a longer one and make soak DURATION=... runs for
// as long as asked. The variables it reads:
//
//	WALLPHONE_CHAOS_SEED      the seed of the schedule (printed by every run)
//	WALLPHONE_CHAOS_KILLS     how many kill -9s of the agent (default 50)
//	WALLPHONE_CHAOS_DURATION  run for this long instead (a Go duration: 30m, 2h)
package chaos
