// Package install writes one signed firmware release into the phone's inactive slot: it
// fetches the release's block index, copies from the running slot every block the new image
// shares with it, fetches the others with HTTP Range requests, and checks every block against
// the signed index before it is written and the whole image against its signed hash once it
// is in the slot. It does not switch slots: the caller marks the slot for a trial boot
// (firmware/bootenv.MarkTrial) only after [Install] returns success.
//
// It keeps promise 6: nothing unsigned runs, and a firmware update never leaves a phone
// without a working slot. The chain of trust is:
//
//   - the image target and the index target are signed targets of the firmware role,
//     found by the caller through tufclient; the index is fetched whole and checked against
//     its signed length and hashes and against the SHA-256 that the image target's signed
//     custom metadata names for it;
//   - the index's image length and whole-image SHA-256 must be the image target's signed
//     length and SHA-256, so each block hash in it is signed data too ([ErrIndex]);
//   - every block, copied or fetched, is checked against its hash before it is written; a
//     fetched block that does not match stops the install before anything of its batch is
//     written ([ErrBlock]), a copied one that does not match is fetched instead;
//   - written blocks are synced, read back from the medium and checked again before the
//     progress store records them;
//   - at the end the whole image is read back from the slot and checked against the image
//     target's signed length and hashes ([ErrImage]).
//
// The running slot is only read. The inactive slot holds no bootable image until the caller
// switches to it, so a failure at any point, a power cut included, leaves the phone booting
// what it booted before.
//
// # Resume
//
// The install goes through the image in batches (1 MiB by default). After each batch is
// written, synced and verified, [ProgressStore.Save] records the first block not yet done,
// with the SHA-256 of the image and of the index it belongs to. A later Install of the same
// release (after a crash, a reboot, a dropped connection, a cancelled context) starts at that
// block, so it fetches again at most the one batch that was under way. A progress record of
// another release (a new version published meanwhile) is replaced, before anything is
// written, by one of this release at block 0: the install starts over, and blocks of the old
// release are never counted as done for the new one.
//
// Write order, which makes the record crash-safe: (1) the record of this release at block 0
// is saved before the first write into the slot; (2) a batch's blocks are written, the slot
// is synced (fdatasync), each block is read back and checked; (3) only then is the record
// advanced past the batch, by an atomic replace ([FileStore]: temporary file, fsync, rename,
// fsync of the directory; the agent's bbolt store: one transaction). A crash before (3)
// leaves the record at the batch's start, and the batch is written again. A read-back of the
// whole image that fails resets the record to block 0.
//
// # Memory
//
// The image is never held: the install holds one batch (BatchSize bytes, and a byte per block
// of it), the block index in a file in Dir (read a hash at a time, see
// firmware/blockindex), and the plan of what to copy and fetch, which [blockindex.Plan] makes
// with 8 bytes and a map entry per block of the running image (about 3 MiB for a 512 MiB
// image in 4 KiB blocks) and keeps as a list of runs, small unless the changes are scattered.
package install
