package crdt

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/fixture"
)

// TestOpenMigratesLayout1: a store in layout 1 opens holding what a store
// written in this layout holds, record for record, whether its migration
// runs whole or goes on after one cut short.
func TestOpenMigratesLayout1(t *testing.T) {
	ctx := context.Background()
	evs := fixture.New(8, 3).Batch(3*migrateBatch + 100)
	written := newMapStore()
	s := newSet(t, written)
	if _, err := s.Merge(ctx, evs); err != nil {
		t.Fatal(err)
	}
	want := records(t, written)

	for _, cut := range []bool{false, true} {
		t.Run(fmt.Sprintf("cut short %v", cut), func(t *testing.T) {
			ds := newMapStore()
			writeLayout1(t, ds, evs)
			if cut {
				// As if the process died in the middle of the index by
				// kind, the events and the index by node moved already.
				b := newDatastoreBackend(ds, DefaultTraceBucket)
				if err := b.migrate(ctx, eventPrefix, inLayout1, layout1Key); err != nil {
					t.Fatal(err)
				}
				if err := b.migrate(ctx, nodePrefix, inLayout1, layout1Key); err != nil {
					t.Fatal(err)
				}
				var kinds []string
				for k := range records(t, ds) {
					if strings.HasPrefix(k, kindPrefix) {
						kinds = append(kinds, k)
					}
				}
				if err := b.migrateBatch(ctx, kindPrefix, kinds[:migrateBatch], layout1Key); err != nil {
					t.Fatal(err)
				}
			}
			m := newSet(t, ds)
			if got := records(t, ds); !maps.EqualFunc(got, want, bytes.Equal) {
				t.Fatalf("the migrated store holds %d records, a store written in this layout %d, or others", len(got), len(want))
			}
			if m.Len() != len(evs) || fingerprint(m, All) != fingerprint(s, All) {
				t.Fatalf("the migrated set holds %d events, want %d, or has another fingerprint", m.Len(), len(evs))
			}
			for _, e := range evs[:10] {
				if got, err := m.Get(ctx, e.ID); err != nil || got.ID != e.ID {
					t.Fatalf("Get(%v) = %v, %v", e.ID, got.ID, err)
				}
			}
		})
	}
}

// TestOpenMigratesLayout2: a store in layout 2, its correlation index
// filed by trace alone, opens holding what a store written in this layout
// holds, and finds every trace, whether its migration runs whole or goes
// on after one cut short.
func TestOpenMigratesLayout2(t *testing.T) {
	ctx := context.Background()
	evs := fixture.New(11, 3).Batch(3*migrateBatch + 100)
	opts := Options{TraceBucket: time.Millisecond} // the events span some 8 ms
	written := newMapStore()
	s, err := New(ctx, written, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Merge(ctx, evs); err != nil {
		t.Fatal(err)
	}
	want := records(t, written)
	var buckets int
	for k := range want {
		if strings.HasPrefix(k, bucketPrefix) {
			buckets++
		}
	}
	if buckets < 4 {
		t.Fatalf("the store written in this layout has %d trace index buckets, want several", buckets)
	}

	for _, cut := range []bool{false, true} {
		t.Run(fmt.Sprintf("cut short %v", cut), func(t *testing.T) {
			ds := newMapStore()
			writeLayout2(t, ds, want)
			if cut {
				// As if the process died once the buckets were recorded
				// and a batch of entries moved.
				b := newDatastoreBackend(ds, time.Millisecond)
				var old []string
				for k, v := range want {
					if strings.HasPrefix(k, bucketPrefix) {
						if err := ds.Put(ctx, datastore.RawKey(k), v); err != nil {
							t.Fatal(err)
						}
					}
				}
				for k := range records(t, ds) {
					if strings.HasPrefix(k, correlationPrefix) {
						old = append(old, k)
					}
				}
				if err := b.migrateBatch(ctx, correlationPrefix, old[:migrateBatch], b.layout2Key); err != nil {
					t.Fatal(err)
				}
			}
			m, err := New(ctx, ds, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if got := records(t, ds); !maps.EqualFunc(got, want, bytes.Equal) {
				t.Fatalf("the migrated store holds %d records, a store written in this layout %d, or others", len(got), len(want))
			}
			for _, e := range evs[:50] {
				var got, wantIDs []events.ID
				trace := e.Correlation.String()
				for _, ev := range evs {
					if ev.Correlation == e.Correlation {
						wantIDs = append(wantIDs, ev.ID)
					}
				}
				err := m.ScanIndex(ctx, ByCorrelation, trace, All, false, func(ev events.Event) bool {
					got = append(got, ev.ID)
					return true
				})
				if err != nil || !slices.Equal(got, wantIDs) {
					t.Fatalf("trace %s: %d events, %v; want %d", trace, len(got), err, len(wantIDs))
				}
			}
		})
	}
}

// writeLayout2 writes to ds the records of a store in this layout, recs,
// as layout 2 had them: the correlation index by trace alone, and no
// buckets.
func writeLayout2(t *testing.T, ds datastore.Batching, recs map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	for k, v := range recs {
		switch {
		case k == layoutKey.String():
			v = []byte("2")
		case strings.HasPrefix(k, bucketPrefix):
			continue
		case strings.HasPrefix(k, correlationPrefix):
			parts := strings.Split(k[len(correlationPrefix):], "/") // bucket, trace, key
			k = correlationPrefix + parts[1] + "/" + parts[2]
		}
		if err := ds.Put(ctx, datastore.RawKey(k), v); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenRefusesUnknownLayout: a store in a layout this package does not
// know is an error, and is left as it is.
func TestOpenRefusesUnknownLayout(t *testing.T) {
	ctx := context.Background()
	ds := newMapStore()
	if err := ds.Put(ctx, layoutKey, []byte("4")); err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, ds, Options{}); err == nil || !strings.Contains(err.Error(), `layout "4"`) {
		t.Fatalf("New of a store in layout 4 = %v", err)
	}
	if v, err := ds.Get(ctx, layoutKey); err != nil || string(v) != "4" {
		t.Fatalf("the store's layout is %q, %v after New", v, err)
	}
}

// TestOpenReportsCorruptLayout1Records: a layout 1 record that is not one
// is reported as corrupt, not migrated into something else.
func TestOpenReportsCorruptLayout1Records(t *testing.T) {
	ctx := context.Background()
	evs := fixture.New(9, 2).Batch(10)
	k := KeyOf(evs[0])
	key := hex.EncodeToString(k[:])
	for _, bad := range []string{
		correlationPrefix + "zz/" + key,                    // not hex
		correlationPrefix + fmt.Sprintf("%016x/", 1) + key, // a digest where a trace goes
		nodePrefix + key,                                   // no value
	} {
		ds := newMapStore()
		writeLayout1(t, ds, evs)
		if err := ds.Put(ctx, datastore.RawKey(bad), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := New(ctx, ds, Options{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("New of a layout 1 store holding %q = %v, want ErrCorrupt", bad, err)
		}
	}
}

// TestOpenReportsCorruptIndexEntries: an index entry whose digest or key
// is not keyText of the right length — a character outside its alphabet,
// a last character with bits no value sets, one too many — is reported as
// corrupt when the set is opened.
func TestOpenReportsCorruptIndexEntries(t *testing.T) {
	ctx := context.Background()
	e := fixture.New(10, 1).Next()
	k := KeyOf(e)
	key := string(keyText.AppendEncode(nil, k[:]))
	digest := string(appendDigestPrefix(nil, nodePrefix, digest(e.Node)))
	last := key[len(key)-1:]
	for _, bad := range []string{
		digest + key[:len(key)-1] + "+",               // outside the alphabet
		digest + key[:len(key)-1] + string(last[0]+1), // bits past the key's
		digest + key + "0",                            // too long
		nodePrefix + digest[len(nodePrefix)+1:] + key, // a digest too short
	} {
		ds := newMapStore()
		s := newSet(t, ds)
		if _, err := s.Add(ctx, e); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := ds.Put(ctx, datastore.RawKey(bad), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := New(ctx, ds, Options{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("New of a store holding %q = %v, want ErrCorrupt", bad, err)
		}
	}
}

// writeLayout1 writes evs to ds as layout 1 did: keys, digests and trace
// IDs in lowercase hex.
func writeLayout1(t *testing.T, ds datastore.Batching, evs []events.Event) {
	t.Helper()
	ctx := context.Background()
	put := func(key string, value []byte) {
		if err := ds.Put(ctx, datastore.RawKey(key), value); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range evs {
		k := KeyOf(e)
		key := hex.EncodeToString(k[:])
		put(eventPrefix+key, marshal(t, e))
		put(fmt.Sprintf("%s%016x/%s", nodePrefix, digest(e.Node), key), nil)
		put(fmt.Sprintf("%s%016x/%s", kindPrefix, digest(e.Kind), key), nil)
		if !e.Correlation.IsZero() {
			put(fmt.Sprintf("%s%x/%s", correlationPrefix, e.Correlation[:], key), nil)
		}
	}
}

// records returns every record of ds.
func records(t *testing.T, ds datastore.Batching) map[string][]byte {
	t.Helper()
	res, err := ds.Query(context.Background(), dsq.Query{})
	if err != nil {
		t.Fatal(err)
	}
	all, err := res.Rest()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]byte, len(all))
	for _, e := range all {
		out[e.Key] = e.Value
	}
	return out
}
