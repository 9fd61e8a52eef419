package crdt

import (
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/ipfs/go-datastore"

	"github.com/scopemesh/scopemesh/events"
)

// The datastore layout. Every event has two records and up to three index
// entries, all written in one batch:
//
//	/e/<key>             the event, events.Marshal encoding
//	/i/<id>              its key, 44 bytes: for reads by ID
//	/n/<node>/<key>      by origin node (every event: rebuilds the ordered index)
//	/k/<kind>/<key>      by kind
//	/c/<trace>/<key>     by correlation, for events that have one
//
// Events are stored under their key, not their ID, so that events close in
// time — a trace's, a time range's — share storage blocks: a trace read
// touches a block or two rather than one per event.
//
// <id>, <key> and <trace> are lowercase hex, which keeps byte order, so an
// index prefix lists its events in key order. <node> and <kind> are the
// hex of a 64-bit FNV-1a digest of the value: short keys compare fast, and
// no value can put a '/' in a key. Two values with one digest would share
// an index prefix; ScanIndex checks each event's value, so that costs
// reads, never wrong answers.
const (
	eventPrefix       = "/e/"
	idPrefix          = "/i/"
	nodePrefix        = "/n/"
	kindPrefix        = "/k/"
	correlationPrefix = "/c/"
)

// Index names a secondary index of the set.
type Index int

// The secondary indexes.
const (
	ByCorrelation Index = iota // value: a TraceID's hex form
	ByNode                     // value: the origin node
	ByKind                     // value: the kind
)

func (i Index) String() string {
	switch i {
	case ByCorrelation:
		return "correlation"
	case ByNode:
		return "node"
	case ByKind:
		return "kind"
	}
	return fmt.Sprintf("Index(%d)", int(i))
}

func eventKey(k Key) datastore.Key { return datastore.RawKey(eventPrefix + k.String()) }

func idKey(id events.ID) datastore.Key {
	return datastore.RawKey(idPrefix + hex.EncodeToString(id[:]))
}

// digest is the index segment of a node or kind.
func digest(value string) string {
	h := fnv.New64a()
	h.Write([]byte(value))
	return hex.EncodeToString(h.Sum(nil))
}

// indexPrefix returns the datastore prefix, with its trailing '/', under
// which index i lists the keys of events whose field equals value.
func indexPrefix(i Index, value string) (string, error) {
	switch i {
	case ByCorrelation:
		t, err := events.ParseTraceID(value)
		if err != nil {
			return "", err
		}
		return correlationPrefix + t.String() + "/", nil
	case ByNode:
		return nodePrefix + digest(value) + "/", nil
	case ByKind:
		return kindPrefix + digest(value) + "/", nil
	}
	return "", fmt.Errorf("crdt: unknown index %v", i)
}

// indexed reports whether index i lists e under value.
func indexed(i Index, e events.Event, value string) bool {
	switch i {
	case ByNode:
		return e.Node == value
	case ByKind:
		return e.Kind == value
	}
	return true // the correlation index uses the whole trace ID
}

// indexEntries returns the index keys of e.
func indexEntries(e events.Event, k Key) []datastore.Key {
	suffix := k.String()
	keys := make([]datastore.Key, 0, 3)
	keys = append(keys,
		datastore.RawKey(nodePrefix+digest(e.Node)+"/"+suffix),
		datastore.RawKey(kindPrefix+digest(e.Kind)+"/"+suffix))
	if !e.Correlation.IsZero() {
		keys = append(keys, datastore.RawKey(correlationPrefix+e.Correlation.String()+"/"+suffix))
	}
	return keys
}

// parseIndexEntry splits an index key into its value segment (a digest or
// a trace ID) and the event key.
func parseIndexEntry(s string) (segment string, k Key, err error) {
	i := strings.LastIndexByte(s, '/')
	j := strings.LastIndexByte(s[:max(i, 0)], '/')
	if i < 0 || j < 0 {
		return "", k, fmt.Errorf("%w: index entry %q", ErrCorrupt, s)
	}
	if k, err = ParseKey(s[i+1:]); err != nil {
		return "", k, fmt.Errorf("%w: index entry %q: %v", ErrCorrupt, s, err)
	}
	return s[j+1 : i], k, nil
}
