package events

import "errors"

// Sentinel errors. The error returned wraps one of them and names the field
// or part of the input at fault; test with errors.Is.
var (
	// ErrInvalid reports an event, ID or header that breaks a rule of its
	// format; the wrapping error names the field.
	ErrInvalid = errors.New("events: invalid")

	// ErrTooLarge reports an event, field or batch beyond a limit of Limits,
	// or compressed data that expands beyond the size its header declares.
	ErrTooLarge = errors.New("events: too large")

	// ErrIDMismatch reports an event whose ID is not the hash of its content:
	// it was changed after Seal, or never sealed.
	ErrIDMismatch = errors.New("events: ID does not match content")

	// ErrSignature reports an event whose Signature is missing or is not
	// its origin's signature of its ID.
	ErrSignature = errors.New("events: bad signature")

	// ErrVersion reports a batch in a format version this package does not
	// know.
	ErrVersion = errors.New("events: unknown batch version")
)
