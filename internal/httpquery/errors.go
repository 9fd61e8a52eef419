package httpquery

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/query"
)

// StatusOf picks the HTTP status for an error of the node or of a request
// to it.
func StatusOf(err error) int {
	switch {
	case errors.Is(err, events.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, query.ErrInvalidFilter), errors.Is(err, query.ErrExpiredCursor),
		errors.Is(err, events.ErrInvalid), errors.Is(err, scopemesh.ErrInvalidPeer):
		return http.StatusBadRequest
	case errors.Is(err, scopemesh.ErrUnknownMember):
		return http.StatusNotFound
	case errors.Is(err, scopemesh.ErrClosed):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// Error is the body of an answer that is an error.
type Error struct {
	Error string
}

// WriteError answers with code and err as an Error in JSON.
func WriteError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(Error{Error: err.Error()})
}
