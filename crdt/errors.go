package crdt

import "errors"

var (
	// ErrClosed reports use of a Set or Watch after Close.
	ErrClosed = errors.New("crdt: closed")

	// ErrNotFound reports an event the set does not hold.
	ErrNotFound = errors.New("crdt: event not found")

	// ErrInvalidKey reports text that does not encode a Key.
	ErrInvalidKey = errors.New("crdt: invalid key")

	// ErrCorrupt reports stored data the set cannot read back.
	ErrCorrupt = errors.New("crdt: corrupt store")

	// ErrExpired reports an event below the set's horizon: retention has
	// deleted what lay there, or would.
	ErrExpired = errors.New("crdt: event below the retention horizon")

	// ErrGap is matched by the *GapError a Watch returns when it had to drop
	// events for a reader that fell behind.
	ErrGap = errors.New("crdt: watch fell behind")
)
