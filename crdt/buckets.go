package crdt

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// The correlation index of a datastore set files its entries in buckets of
// time: /c/<bucket>/<trace>/<key>, where <bucket> is the wall times [start,
// end) of the events it files, in keyText. A bucket expires whole, by one
// range deletion, once retention has passed its end: entries of random
// traces scattered over the store would each need a tombstone, which
// compactions carry down the store and rewrite with every table they
// touch, and which slowed recording with retention running. A trace lookup
// reads every bucket the set holds, which records under /b/ list: buckets
// of about an eighth of the retention keep both the lookups and the
// entries that outlive the horizon within their bucket few.

// DefaultTraceBucket is the span of a trace index bucket when
// Options.TraceBucket is zero.
const DefaultTraceBucket = 24 * time.Hour

const bucketPrefix = "/b/"

// bucket is the span of wall times [start, end), in nanoseconds, whose
// events' correlation entries share a prefix.
type bucket struct{ start, end int64 }

// appendBucket appends b in keyText.
func appendBucket(dst []byte, b bucket) []byte {
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(b.start))
	binary.BigEndian.PutUint64(raw[8:], uint64(b.end))
	return keyText.AppendEncode(dst, raw[:])
}

// parseBucket reads a bucket in keyText.
func parseBucket(s string) (bucket, error) {
	var raw [16]byte
	if err := decodeKeyText(raw[:], s); err != nil {
		return bucket{}, fmt.Errorf("%w: trace index bucket: %v", ErrCorrupt, err)
	}
	b := bucket{int64(binary.BigEndian.Uint64(raw[:8])), int64(binary.BigEndian.Uint64(raw[8:]))}
	if b.end <= b.start {
		return bucket{}, fmt.Errorf("%w: trace index bucket %q ends before it starts", ErrCorrupt, s)
	}
	return b, nil
}

// appendBucketTracePrefix appends the prefix, with its trailing '/', under
// which bucket b of the correlation index lists trace t.
func appendBucketTracePrefix(dst []byte, b bucket, t [16]byte) []byte {
	dst = append(appendBucket(append(dst, correlationPrefix...), b), '/')
	return append(keyText.AppendEncode(dst, t[:]), '/')
}

// bucketTable holds the buckets of a datastore set's correlation index.
// It is safe for concurrent use.
type bucketTable struct {
	width int64 // of new buckets, in nanoseconds

	mu   sync.RWMutex
	held []bucket // sorted by start, then end
}

// of returns the bucket of new entries for events at wall time wall.
func (t *bucketTable) of(wall int64) bucket {
	start := wall - wall%t.width
	if wall < 0 && wall%t.width != 0 {
		start -= t.width
	}
	return bucket{start, start + t.width}
}

// missing returns those of bs the table does not hold, each once.
func (t *bucketTable) missing(bs []bucket) []bucket {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []bucket
	for _, b := range bs {
		if _, found := slices.BinarySearchFunc(t.held, b, cmpBucket); !found && !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	return out
}

// add adds bs, which the store now lists, to the table.
func (t *bucketTable) add(bs []bucket) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, b := range bs {
		if i, found := slices.BinarySearchFunc(t.held, b, cmpBucket); !found {
			t.held = slices.Insert(t.held, i, b)
		}
	}
}

func cmpBucket(a, b bucket) int {
	return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.end, b.end))
}

// overlapping returns the buckets that hold wall times in [from, to).
func (t *bucketTable) overlapping(from, to int64) []bucket {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []bucket
	for _, b := range t.held {
		if b.start < to && from < b.end {
			out = append(out, b)
		}
	}
	return out
}

// endedBy returns the buckets that end at or before wall.
func (t *bucketTable) endedBy(wall int64) []bucket {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []bucket
	for _, b := range t.held {
		if b.end <= wall {
			out = append(out, b)
		}
	}
	return out
}

// remove drops bs from the table.
func (t *bucketTable) remove(bs []bucket) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.held = slices.DeleteFunc(t.held, func(b bucket) bool { return slices.Contains(bs, b) })
}

// loadBuckets reads the buckets the store lists.
func (b *datastoreBackend) loadBuckets(ctx context.Context) error {
	var held []bucket
	var bad error
	err := b.listKeys(ctx, bucketPrefix, false, func(entry string) bool {
		var bk bucket
		if bk, bad = parseBucket(entry[len(bucketPrefix):]); bad != nil {
			return false
		}
		held = append(held, bk)
		return true
	})
	if err != nil || bad != nil {
		return fmt.Errorf("crdt: reading the trace index's buckets: %w", errors.Join(err, bad))
	}
	slices.SortFunc(held, cmpBucket)
	b.buckets.mu.Lock()
	b.buckets.held = held
	b.buckets.mu.Unlock()
	return nil
}
