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
//     fetched block that does not match stops the install before it or anything after it is
//     written ([ErrBlock]), a copied one that does not match is fetched instead;
//   - written blocks are synced, read back from the medium and checked again before the
//     progress store records them ([ErrReadBack]); blocks a cut-short run left in the slot
//     past its record are checked against the index, read from the medium, before they
//     count as done;
//   - at the end the whole image is read back from the slot and checked against the image
//     target's signed length and hashes ([ErrImage]).
//
// The running slot is only read. The inactive slot holds no bootable image until the caller
// switches to it, so a failure at any point, a power cut included, leaves the phone booting
// what it booted before.
//
// # Resume
//
// The install goes through the image in batches (1 MiB by default): one goroutine fills the
// next batch (copies and Range requests, each block checked) while Install's writes the one
// before, syncs the slot (fdatasync, then the page cache dropped) and reads the batch back
// in one read, checking each block again. Every 16 batches, and whenever the run stops (an
// error, a cancelled context), [ProgressStore.Save] records the first block not yet done,
// with the SHA-256 of the image and of the index it belongs to. A batch cut short keeps the
// blocks that came whole: they are written and recorded too.
//
// A later Install of the same release (after a crash, a reboot, a dropped connection, a
// cancelled context) reads the blocks past the record from the slot and checks them against
// the index, stopping at the first that does not match, and fetches from there: a run that
// stopped on an error or a cancelled context fetches again at most the block a connection
// was cut in; one killed or powered off, also what it had fetched but not yet written (at
// most the batch being filled) and the blocks the medium lost because they were not yet
// synced (at most the batch being written). A progress record of another release (a new
// version published meanwhile) is replaced, before anything is written, by one of this
// release at block 0, and the slot is not checked: the install starts over.
//
// Write order, which makes the record crash-safe: (1) the record of this release at block 0
// is saved before the first write into the slot; (2) a batch's blocks are written, the slot
// is synced, the batch is read back and checked; (3) only then may the record move past the
// batch, by an atomic replace ([FileStore]: temporary file, fsync, rename, fsync of the
// directory; the agent's bbolt store: one transaction). A crash leaves the record behind
// what is in the slot, never ahead of it. A read-back of the whole image that fails resets
// the record to block 0.
//
// # Memory
//
// The image is never held: the install holds two batches (2 × BatchSize bytes, and 40 bytes
// per block of them: one batch filling while the other is written; the filling goroutine
// waits for the other to be written before it fetches more), the block index in a file in Dir (read a hash at a time, see
// firmware/blockindex), and the plan of what to copy and fetch, which [blockindex.Plan] makes
// with 8 bytes and a map entry per block of the running image (about 3 MiB for a 512 MiB
// image in 4 KiB blocks) and keeps as a list of runs, small unless the changes are scattered.
package install
