package bootenv

import "errors"

var (
	// ErrConfig is returned by ParseConfig, ReadConfig and Open for a configuration that does
	// not describe one or two usable copies: a line that does not parse, more than two lines,
	// copies of different sizes, a size too small or too large.
	ErrConfig = errors.New("bootenv: bad configuration")

	// ErrNoValidCopy is returned by Open when no copy of the environment has a good CRC and an
	// end (a blank or erased device, or both copies torn). OpenOrDefault starts from defaults
	// instead, for callers that choose to.
	ErrNoValidCopy = errors.New("bootenv: no valid copy of the environment")

	// ErrBadName is returned by Set for an empty name or one holding '=' or NUL, and for a value
	// holding NUL: U-Boot could not read either back.
	ErrBadName = errors.New("bootenv: bad variable")

	// ErrTooLarge is returned by Set and Save when the variables do not fit the configured size.
	ErrTooLarge = errors.New("bootenv: environment too large for its size")

	// ErrSlot is returned by MarkTrial for a slot that is not SlotA or SlotB or is the good slot
	// (a trial of it would leave nothing to fall back to), and by Commit for a slot that is not
	// SlotA or SlotB.
	ErrSlot = errors.New("bootenv: wrong slot")

	// ErrUnsupported is returned by Open for a device this package cannot write safely: NAND
	// flash, a redundant environment on NOR flash (which U-Boot marks with other flags), or a
	// NOR copy not aligned to erase blocks.
	ErrUnsupported = errors.New("bootenv: unsupported device")
)
