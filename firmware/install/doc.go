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
//   - written blocks are synced, read back from the medium and compared with what was
//     written (by CRC-32C, block by block) before the progress store records them
//     ([ErrReadBack]); blocks a cut-short run left in the slot past its record are checked
//     against the index, read from the medium, before they count as done;
//   - at the end the whole image is read back from the slot and checked against the image
//     target's signed length and hashes ([ErrImage]).
//
// The running slot is only read. The inactive slot holds no bootable image until the caller
// switches to it, so a failure at any point, a power cut included, leaves the phone booting
// what it booted before.
//
// # Resume
//
// The install goes through the image in order, in three goroutines. One makes the blocks:
// it copies runs from the running slot and fetches the rest with Range requests (up to
// 1 MiB each), and after each read from the running slot or the connection it checks the
// whole blocks that have come against the index and writes those into the slot at once, in
// one write, keeping only a partial block for the next read. Every batch (16 MiB by default)
// it hands what it wrote on, with the CRC-32C of each block, and waits for it to be taken. A
// second syncs the slot (fdatasync, then the page cache dropped) that far; Install's own
// reads what was synced back from the medium and compares each block with its CRC-32C,
// then, every 64 MiB and whenever the run stops (an error, a cancelled context),
// [ProgressStore.Save] records the first block not yet done, with the SHA-256 of the image
// and of the index it belongs to. Blocks that came whole before a run stopped are written,
// synced, read back and recorded too.
//
// A later Install of the same release (after a crash, a reboot, a dropped connection, a
// cancelled context) reads the blocks past the record from the slot and checks them against
// the index, stopping at the first that does not match, and fetches from there. Since the
// whole blocks received are in the slot's page cache before the next read from the
// connection, which the kernel keeps when a process dies, a run that stopped on an error or
// a cancelled context, or was killed (kill -9, a crash) while it waited for the network,
// fetches again at most the block a connection was cut in (and what the connection held
// that had not been read yet, at most the rest of a range). One killed between a read
// returning and the write of its blocks (the time it takes to hash them) fetches again also
// what that read gave: at most a buffer (256 KiB), a few KiB on a slow link. A power cut
// loses, besides, what the medium had not been made to keep: the blocks written since the
// last sync, at most about two batches (32 MiB). A progress record of another release (a new
// version published meanwhile) is replaced, before anything is written, by one of this
// release at block 0, and the slot is not checked: the install starts over.
//
// Write order, which makes the record crash-safe: (1) the record of this release at block 0
// is saved before the first write into the slot; (2) blocks are written, each checked
// against the index first; the slot is synced and what the sync covered is read back and
// compared; (3) only then may the record move past those blocks, by an atomic replace
// ([FileStore]: temporary file, fsync, rename, fsync of the directory; the agent's bbolt
// store: one transaction). A crash leaves the record behind what is on the medium, never
// ahead of it. A read-back of the whole image that fails resets the record to block 0.
//
// # Memory
//
// The image is never held, nor is a batch: what bounds the install's memory is two buffers
// of [BufferSize] (256 KiB; one receiving from the connection or the running slot, one
// reading back from the slot), whatever the image's or the batch's size; the CRC-32C of the
// blocks written but not yet read back (4 bytes a block, at most about three batches: 48 KiB
// with the defaults); the block index in a file in Dir, read 8 KiB of hashes at a time by
// each of two goroutines (see firmware/blockindex); and the plan of what to copy and fetch,
// which [blockindex.Plan] makes with 8 bytes and a map entry per block of the running image
// (about 3 MiB for a 512 MiB image in 4 KiB blocks) and keeps as a list of runs, small
// unless the changes are scattered. With no running image to compare with, the plan costs
// nothing. Each Range request (one a MiB) leaves a few KiB of garbage, the HTTP client's
// request and response; how much garbage the heap holds before a collection is the
// program's GOGC, which this package leaves alone.
package install
