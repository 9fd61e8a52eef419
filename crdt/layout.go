package crdt

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ipfs/go-datastore"

	"github.com/scopemesh/scopemesh/events"
)

// layoutKey holds the version of the layout a store is written in
// (store.go). A store without it is empty or in layout 1.
var layoutKey = datastore.RawKey("/layout")

// layoutVersion is the version of the layout this package writes.
const layoutVersion = "3"

// migrateBatch is how many records a migration moves per batch.
const migrateBatch = 1024

// upgradeLayout readies the store for this layout: it marks an empty
// store, rewrites one in layout 1 — keys, digests and trace IDs in hex —
// in layout 2, and files the correlation index of one in layout 2 in
// buckets. Each batch moves its records atomically, and the mark goes
// last, so a migration cut short goes on at the next open. A store in a
// layout this package does not know is an error, and is left as it is.
func (b *datastoreBackend) upgradeLayout(ctx context.Context) error {
	v, err := b.ds.Get(ctx, layoutKey)
	switch {
	case err == nil && string(v) == layoutVersion:
		return nil
	case err == nil && string(v) == "2":
	case err == nil:
		return fmt.Errorf("crdt: the store is in layout %q, and this version reads layout %s", v, layoutVersion)
	case !errors.Is(err, datastore.ErrNotFound):
		return fmt.Errorf("crdt: reading the store's layout: %w", err)
	default:
		for _, prefix := range []string{eventPrefix, nodePrefix, kindPrefix, correlationPrefix} {
			if err := b.migrate(ctx, prefix, inLayout1, layout1Key); err != nil {
				return fmt.Errorf("crdt: rewriting the store's %s records in layout 2: %w", prefix, err)
			}
		}
	}
	if err := b.bucketTraces(ctx); err != nil {
		return fmt.Errorf("crdt: filing the store's trace index in buckets: %w", err)
	}
	if err := b.ds.Put(ctx, layoutKey, []byte(layoutVersion)); err != nil {
		return fmt.Errorf("crdt: marking the store's layout: %w", err)
	}
	return nil
}

// inLayout1 reports whether entry is a layout 1 record: the key that ends
// a record is longer in hex.
func inLayout1(entry string) bool {
	return len(entry)-strings.LastIndexByte(entry, '/')-1 == hex.EncodedLen(KeyLen)
}

// inLayout2 reports whether entry, under correlationPrefix, is a layout 2
// record: /c/<trace>/<key>, with no bucket.
func inLayout2(entry string) bool {
	return strings.Count(entry[len(correlationPrefix):], "/") == 1
}

// bucketTraces moves the layout 2 entries of the correlation index,
// /c/<trace>/<key>, into buckets, /c/<bucket>/<trace>/<key>. It records
// the buckets first, so that every entry moved is found, however far the
// move goes.
func (b *datastoreBackend) bucketTraces(ctx context.Context) error {
	var used []bucket
	var bad error
	err := b.listKeys(ctx, correlationPrefix, false, func(entry string) bool {
		if !inLayout2(entry) {
			return true
		}
		k, err := parseKeyText(entry[strings.LastIndexByte(entry, '/')+1:])
		if err != nil {
			bad = fmt.Errorf("%w: layout 2 record %q: %v", ErrCorrupt, entry, err)
			return false
		}
		if bk := b.buckets.of(k.Time().Wall); !slices.Contains(used, bk) {
			used = append(used, bk)
		}
		return true
	})
	if err = errors.Join(err, bad); err != nil || len(used) == 0 {
		return err
	}
	batch, err := b.ds.Batch(ctx)
	if err != nil {
		return err
	}
	for _, bk := range used {
		if err := batch.Put(ctx, datastore.RawKey(string(appendBucket([]byte(bucketPrefix), bk))), nil); err != nil {
			return err
		}
	}
	if err := batch.Commit(ctx); err != nil {
		return err
	}
	return b.migrate(ctx, correlationPrefix, inLayout2, b.layout2Key)
}

// layout2Key returns the key in this layout of entry, a correlation index
// entry in layout 2.
func (b *datastoreBackend) layout2Key(_, entry string) (string, error) {
	rest := entry[len(correlationPrefix):]
	i := strings.IndexByte(rest, '/')
	var t events.TraceID
	if err := decodeKeyText(t[:], rest[:i]); err != nil {
		return "", fmt.Errorf("%w: layout 2 record %q: %v", ErrCorrupt, entry, err)
	}
	k, err := parseKeyText(rest[i+1:])
	if err != nil {
		return "", fmt.Errorf("%w: layout 2 record %q: %v", ErrCorrupt, entry, err)
	}
	key := appendBucketTracePrefix(nil, b.buckets.of(k.Time().Wall), t)
	return string(keyText.AppendEncode(key, k[:])), nil
}

// migrate rewrites the records under prefix that old picks, under the keys
// rewrite gives them. It lists the old keys first, since a go-datastore
// query cannot resume from a key, and holds them in memory meanwhile:
// about 100 bytes an event.
func (b *datastoreBackend) migrate(ctx context.Context, prefix string, old func(entry string) bool, rewrite func(prefix, entry string) (string, error)) error {
	var entries []string
	err := b.listKeys(ctx, prefix, false, func(entry string) bool {
		if old(entry) {
			entries = append(entries, entry)
		}
		return true
	})
	if err != nil {
		return err
	}
	for len(entries) > 0 {
		n := min(len(entries), migrateBatch)
		if err := b.migrateBatch(ctx, prefix, entries[:n], rewrite); err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// migrateBatch moves the records entries, under prefix, to the keys
// rewrite gives them, in one batch.
func (b *datastoreBackend) migrateBatch(ctx context.Context, prefix string, entries []string, rewrite func(prefix, entry string) (string, error)) error {
	batch, err := b.ds.Batch(ctx)
	if err != nil {
		return err
	}
	for _, entry := range entries {
		key, err := rewrite(prefix, entry)
		if err != nil {
			return err
		}
		var value []byte // index entries have none
		if prefix == eventPrefix {
			if value, err = b.ds.Get(ctx, datastore.RawKey(entry)); err != nil {
				return err
			}
		}
		if err := batch.Put(ctx, datastore.RawKey(key), value); err != nil {
			return err
		}
		if err := batch.Delete(ctx, datastore.RawKey(entry)); err != nil {
			return err
		}
	}
	return batch.Commit(ctx)
}

// layout1Key returns the key in layout 2 of entry, a key under prefix in
// layout 1: prefix, then, in an index, the hex of a value's digest or
// trace ID and a '/', then the hex of the event's key.
func layout1Key(prefix, entry string) (string, error) {
	rest := entry[len(prefix):]
	out := []byte(prefix)
	if prefix != eventPrefix {
		valueLen := 8 // a digest
		if prefix == correlationPrefix {
			valueLen = len(events.TraceID{})
		}
		i := strings.IndexByte(rest, '/')
		value, err := hex.DecodeString(rest[:max(i, 0)])
		if i < 0 || err != nil || len(value) != valueLen {
			return "", fmt.Errorf("%w: layout 1 record %q", ErrCorrupt, entry)
		}
		out = append(keyText.AppendEncode(out, value), '/')
		rest = rest[i+1:]
	}
	k, err := ParseKey(rest)
	if err != nil {
		return "", fmt.Errorf("%w: layout 1 record %q: %v", ErrCorrupt, entry, err)
	}
	return string(keyText.AppendEncode(out, k[:])), nil
}
