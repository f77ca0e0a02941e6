// Package provisioning is the serial console of a wall phone: the protocol between the
// phone (Server) and a technician's laptop (Client), over any byte stream. It keeps promise 7
// of the design: the console lets in only technicians holding a credential signed by the
// facility, and everything done on it goes to the audit log.
//
// # Framing
//
// Every message is one frame (see AppendFrame): a 6-byte header (version 1, message type,
// sequence number, payload length), a JSON payload of at most MaxPayload bytes and a CRC-32C
// of both, COBS-stuffed so that it holds no zero byte and sent between two zero bytes. The
// receiver acts only on a frame whose delimiters, stuffing, length and checksum all agree;
// line noise, a garbage burst or a frame cut short by a pulled cable are discarded whole, and
// a frame longer than the maximum is refused without being buffered. Test vectors are in
// testdata/frames.txt (name, type, sequence, payload, wire bytes in hex).
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
// nonce from the first) and reboot. Bye, a new hello, a new line (Serve) or IdleTimeout
// without a request end the session.
package provisioning
