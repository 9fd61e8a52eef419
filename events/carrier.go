package events

import (
	"net/http"
	"strings"
)

// TextMapCarrier holds propagation fields as string keys and values: HTTP
// headers, gRPC metadata, the header map of a stream frame. It has the
// method set of OpenTelemetry's propagation.TextMapCarrier, so a carrier of
// either package serves the other.
type TextMapCarrier interface {
	// Get returns the value stored under key, or "" if there is none.
	Get(key string) string

	// Set stores value under key, replacing what was stored there.
	Set(key, value string)

	// Keys lists the keys the carrier holds.
	Keys() []string
}

// ValuesGetter is a TextMapCarrier that can hold several values under one
// key, as HTTP headers and gRPC metadata can. Extract uses it to reject a
// repeated traceparent and to join a tracestate split over several fields,
// as W3C Trace Context requires. OpenTelemetry's propagation.ValuesGetter
// has the same method set.
type ValuesGetter interface {
	TextMapCarrier

	// Values returns every value stored under key.
	Values(key string) []string
}

var (
	_ ValuesGetter   = HeaderCarrier(nil)
	_ ValuesGetter   = MetadataCarrier(nil)
	_ TextMapCarrier = MapCarrier(nil)
)

// HeaderCarrier is a TextMapCarrier over HTTP headers; keys are
// case-insensitive.
type HeaderCarrier http.Header

// Get returns the first value of key.
func (c HeaderCarrier) Get(key string) string { return http.Header(c).Get(key) }

// Values returns every value of key.
func (c HeaderCarrier) Values(key string) []string { return http.Header(c).Values(key) }

// Set replaces the values of key with value.
func (c HeaderCarrier) Set(key, value string) { http.Header(c).Set(key, value) }

// Keys returns the header names, in canonical form.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// MetadataCarrier is a TextMapCarrier over gRPC metadata, which keeps keys
// in lower case: a metadata.MD converts to it without copying,
// MetadataCarrier(md).
type MetadataCarrier map[string][]string

// Get returns the first value of key.
func (c MetadataCarrier) Get(key string) string {
	if v := c[strings.ToLower(key)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Values returns every value of key.
func (c MetadataCarrier) Values(key string) []string { return c[strings.ToLower(key)] }

// Set replaces the values of key with value.
func (c MetadataCarrier) Set(key, value string) { c[strings.ToLower(key)] = []string{value} }

// Keys returns the keys of the metadata.
func (c MetadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// MapCarrier is a TextMapCarrier over a plain map, such as the header map of
// a libp2p stream frame. Keys are matched exactly; this package writes them
// in lower case.
type MapCarrier map[string]string

// Get returns the value of key.
func (c MapCarrier) Get(key string) string { return c[key] }

// Set stores value under key.
func (c MapCarrier) Set(key, value string) { c[key] = value }

// Keys returns the keys of the map.
func (c MapCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
