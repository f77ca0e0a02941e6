// Package provisioning is the serial console of a wall phone: the protocol between the
// phone (Server) and a technician's laptop (Client), over any byte stream. It keeps promise 7
// of the design: the console lets in only technicians holding a credential signed by the
// facility, and everything done on it goes to the audit log.
//
// # Framing
//
// Every message is one frame (see AppendFrame): a 6-byte header (version 1, message type,
// sequence number, payload length), a payload of at most MaxPayload bytes and a CRC-32C
// of both, COBS-stuffed so that it holds no zero byte and sent between two zero bytes. The
// receiver acts only on a frame whose delimiters, stuffing, length and checksum all agree;
// line noise, a garbage burst or a frame cut short by a pulled cable are discarded whole, and
// a frame longer than the maximum is refused without being buffered. Test vectors are in
// testdata/frames.txt (name, type, sequence, payload, wire bytes in hex).
//
// Payloads are JSON, but for one: the data answer (type 0x8c, the answer to a read during a
// firmware update) is binary, so that firmware crosses the line at its own size rather than
// a third larger in base64: the whole file's size (8 bytes, big-endian), then the bytes asked
// for, up to MaxData (AppendData, ParseData; its vector's payload is written "hex:...").
//
// # Session
//
// Before authentication only hello works. Its answer names the phone (device id, firmware,
// device key and fingerprint, facility if enrolled) and carries a fresh 32-byte challenge,
// good once and for ChallengeTTL. The technician answers with a certificate (IssueCertificate:
// name, key, facility, validity, serial, signed by the facility's provisioning key) and an
// Ed25519 signature of AuthMessage(device id, challenge) made with the technician's key. The
// phone checks the certificate against its trust file (ParseTrust: one provisioning key per
// line, each for one facility); an enrolled phone accepts only its own facility. Failures
// back off (1, 2, 4, 8 s) and from the LockAfter-th in a row lock the console for LockFor,
// doubling up to MaxLock; the count lives in the phone's state (LockStore), so a restart
// does not lift a lock.
//
// After authentication: status, selftest, logs (numbers removed), put and enroll (the phone
// makes a new device key, installs the uploaded items that the caller's validators accept,
// and takes the facility from the certificate), reset (two steps, the second carrying a
// nonce from the first), reboot and update. Bye, a new hello, a new line (Serve) or
// IdleTimeout without a request end the session.
//
// # Firmware update
//
// Update turns the line around: the technician's tool sends update and then serves the
// phone's read requests (type 0x0c: a file of its copy of the repository, metadata/... or
// targets/..., an offset and a length; ParseRead refuses any other name) from that folder,
// answering each with a data answer, or with an error of code not_found. The phone (its
// Updater, the agent) drives: it reads the signed metadata whole and the image only in the
// ranges it lacks, and verifies all of it as it would over the network. Its reads are
// pipelined, several requests ahead of the answers, so that the line does not idle while a
// request crosses it; a lost answer is asked for again after RepoTimeout, and after
// repoRetries asks in a row the phone gives up (ErrLaptopGone), keeping what it installed
// for the next run. A request from the technician's tool instead of an answer (a hello
// after the cable was plugged in again) ends the update (ErrInterrupted) and is served.
// While it works the phone sends progress notes (type 0x0d, no answer) at least every few
// seconds; the tool takes a silence of its Timeout for a pulled cable. The answer to
// update says what was installed and what the phone does next; the audit log records who
// updated to which image.
package provisioning
