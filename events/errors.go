package events

import "errors"

var (
	// ErrInvalid reports an event, ID or header that breaks a rule of its
	// format; the wrapping error names the field.
	ErrInvalid = errors.New("events: invalid")
)
