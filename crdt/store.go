package crdt

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/ipfs/go-datastore"

	"github.com/scopemesh/scopemesh/events"
)

// The datastore layout. Every event has one record and three index entries,
// all written in one batch:
//
//	/e/<id>              the event, events.Marshal encoding
//	/n/<node>/<key>      by origin node (every event: rebuilds the ordered index)
//	/k/<kind>/<key>      by kind
//	/c/<trace>/<key>     by correlation, for events that have one
//
// <id>, <key> and <trace> are lowercase hex; <node> and <kind> are hex of
// their bytes, so no value can contain a '/'. Hex keeps byte order, so an
// index prefix lists its events in key order.
const (
	eventPrefix       = "/e/"
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

func eventKey(id events.ID) datastore.Key {
	return datastore.RawKey(eventPrefix + hex.EncodeToString(id[:]))
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
		return nodePrefix + hex.EncodeToString([]byte(value)) + "/", nil
	case ByKind:
		return kindPrefix + hex.EncodeToString([]byte(value)) + "/", nil
	}
	return "", fmt.Errorf("crdt: unknown index %v", i)
}

// indexEntries returns the index keys of e.
func indexEntries(e events.Event, k Key) []datastore.Key {
	suffix := k.String()
	keys := make([]datastore.Key, 0, 3)
	keys = append(keys,
		datastore.RawKey(nodePrefix+hex.EncodeToString([]byte(e.Node))+"/"+suffix),
		datastore.RawKey(kindPrefix+hex.EncodeToString([]byte(e.Kind))+"/"+suffix))
	if !e.Correlation.IsZero() {
		keys = append(keys, datastore.RawKey(correlationPrefix+e.Correlation.String()+"/"+suffix))
	}
	return keys
}

// parseIndexEntry splits an index key into the hex-decoded indexed value and
// the event key.
func parseIndexEntry(s string) (value string, k Key, err error) {
	i := strings.LastIndexByte(s, '/')
	j := strings.LastIndexByte(s[:max(i, 0)], '/')
	if i < 0 || j < 0 {
		return "", k, fmt.Errorf("%w: index entry %q", ErrCorrupt, s)
	}
	if k, err = ParseKey(s[i+1:]); err != nil {
		return "", k, fmt.Errorf("%w: index entry %q: %v", ErrCorrupt, s, err)
	}
	v, err := hex.DecodeString(s[j+1 : i])
	if err != nil {
		return "", k, fmt.Errorf("%w: index entry %q: %v", ErrCorrupt, s, err)
	}
	return string(v), k, nil
}
