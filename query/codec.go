package query

import (
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"github.com/scopemesh/scopemesh/hlc"
)

// MaxFilterBytes bounds an encoded filter: MaxValues values of each kind at
// the event limits' sizes fit well within it.
const MaxFilterBytes = 64 << 10

// filterVersion is the version of the filter's wire form.
const filterVersion = 1

// ErrFilterVersion reports an encoded filter of an unknown version.
var ErrFilterVersion = errors.New("query: unknown filter version")

// wireFilter is a Filter's CBOR form: a map with small integer keys.
type wireFilter struct {
	Version     int               `cbor:"0,keyasint"`
	Correlation []byte            `cbor:"1,keyasint,omitempty"`
	Nodes       []string          `cbor:"2,keyasint,omitempty"`
	Kinds       []string          `cbor:"3,keyasint,omitempty"`
	Attrs       map[string]string `cbor:"4,keyasint,omitempty"`
	Since       []int64           `cbor:"5,keyasint,omitempty"` // [wall, logical]
	Until       []int64           `cbor:"6,keyasint,omitempty"`
	Limit       int               `cbor:"7,keyasint,omitempty"`
	After       []byte            `cbor:"8,keyasint,omitempty"`
	Descending  bool              `cbor:"9,keyasint,omitempty"`
}

var (
	encMode = func() cbor.EncMode {
		m, err := cbor.CoreDetEncOptions().EncMode()
		if err != nil {
			panic(err)
		}
		return m
	}()
	decMode = func() cbor.DecMode {
		m, err := cbor.DecOptions{
			MaxNestedLevels:  4,
			MaxArrayElements: MaxValues,
			MaxMapPairs:      MaxValues + 16,
			IndefLength:      cbor.IndefLengthForbidden,
			DupMapKey:        cbor.DupMapKeyEnforcedAPF,
			UTF8:             cbor.UTF8RejectInvalid,
		}.DecMode()
		if err != nil {
			panic(err)
		}
		return m
	}()
)

// MarshalFilter encodes f for the wire.
func MarshalFilter(f Filter) ([]byte, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	w := wireFilter{Version: filterVersion, Nodes: f.Nodes, Kinds: f.Kinds, Attrs: f.Attrs, Limit: f.Limit, Descending: f.Descending}
	if !f.Correlation.IsZero() {
		w.Correlation = f.Correlation[:]
	}
	if !f.Since.IsZero() {
		w.Since = []int64{f.Since.Wall, int64(f.Since.Logical)}
	}
	if !f.Until.IsZero() {
		w.Until = []int64{f.Until.Wall, int64(f.Until.Logical)}
	}
	if !f.After.IsZero() {
		w.After = f.After[:]
	}
	return encMode.Marshal(w)
}

// UnmarshalFilter decodes a filter from the wire and validates it. It
// checks the size before decoding, and the decoder's limits bound every
// allocation.
func UnmarshalFilter(b []byte) (Filter, error) {
	if len(b) > MaxFilterBytes {
		return Filter{}, fmt.Errorf("%w: %d bytes encoded, limit %d", ErrInvalidFilter, len(b), MaxFilterBytes)
	}
	var w wireFilter
	if err := decMode.Unmarshal(b, &w); err != nil {
		return Filter{}, fmt.Errorf("%w: %v", ErrInvalidFilter, err)
	}
	if w.Version != filterVersion {
		return Filter{}, fmt.Errorf("%w: %d", ErrFilterVersion, w.Version)
	}
	f := Filter{Nodes: w.Nodes, Kinds: w.Kinds, Attrs: w.Attrs, Limit: w.Limit, Descending: w.Descending}
	if err := fixed(f.Correlation[:], w.Correlation, "Correlation"); err != nil {
		return Filter{}, err
	}
	if err := fixed(f.After[:], w.After, "After"); err != nil {
		return Filter{}, err
	}
	var err error
	if f.Since, err = timestamp(w.Since, "Since"); err != nil {
		return Filter{}, err
	}
	if f.Until, err = timestamp(w.Until, "Until"); err != nil {
		return Filter{}, err
	}
	return f, f.Validate()
}

// fixed copies b into dst, a fixed-size field; empty b leaves it zero.
func fixed(dst, b []byte, field string) error {
	if len(b) != 0 && len(b) != len(dst) {
		return fmt.Errorf("%w: %s has %d bytes, want %d", ErrInvalidFilter, field, len(b), len(dst))
	}
	copy(dst, b)
	return nil
}

func timestamp(v []int64, field string) (hlc.Timestamp, error) {
	switch {
	case len(v) == 0:
		return hlc.Timestamp{}, nil
	case len(v) != 2 || v[1] < 0 || v[1] > 1<<32-1:
		return hlc.Timestamp{}, fmt.Errorf("%w: %s is not [wall, logical]", ErrInvalidFilter, field)
	}
	return hlc.Timestamp{Wall: v[0], Logical: uint32(v[1])}, nil
}
