package crdt

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/ipfs/go-datastore"

	"github.com/scopemesh/scopemesh/events"
)

// layoutKey holds the version of the layout a store is written in
// (store.go). A store without it is empty or in layout 1.
var layoutKey = datastore.RawKey("/layout")

// layoutVersion is the version of the layout this package writes.
const layoutVersion = "2"

// migrateBatch is how many records a migration moves per batch.
const migrateBatch = 1024

// upgradeLayout readies the store for this layout: it marks an empty
// store, and rewrites one in layout 1 — keys, digests and trace IDs in hex
// — in this one. Each batch moves its records atomically, and the mark
// goes last, so a migration cut short goes on at the next open. A store in
// a layout this package does not know is an error, and is left as it is.
func (b *datastoreBackend) upgradeLayout(ctx context.Context) error {
	v, err := b.ds.Get(ctx, layoutKey)
	switch {
	case err == nil && string(v) == layoutVersion:
		return nil
	case err == nil:
		return fmt.Errorf("crdt: the store is in layout %q, and this version reads layout %s", v, layoutVersion)
	case !errors.Is(err, datastore.ErrNotFound):
		return fmt.Errorf("crdt: reading the store's layout: %w", err)
	}
	for _, prefix := range []string{eventPrefix, nodePrefix, kindPrefix, correlationPrefix} {
		if err := b.migrate(ctx, prefix); err != nil {
			return fmt.Errorf("crdt: rewriting the store's %s records in layout %s: %w", prefix, layoutVersion, err)
		}
	}
	if err := b.ds.Put(ctx, layoutKey, []byte(layoutVersion)); err != nil {
		return fmt.Errorf("crdt: marking the store's layout: %w", err)
	}
	return nil
}

// migrate rewrites the records under prefix that are in layout 1. Those
// in this layout stay: the key that ends a record is longer in hex. It
// lists the old keys first, since a go-datastore query cannot resume from
// a key, and holds them in memory meanwhile: about 100 bytes an event.
func (b *datastoreBackend) migrate(ctx context.Context, prefix string) error {
	var old []string
	err := b.listKeys(ctx, prefix, false, func(entry string) bool {
		if len(entry)-strings.LastIndexByte(entry, '/')-1 == hex.EncodedLen(KeyLen) {
			old = append(old, entry)
		}
		return true
	})
	if err != nil {
		return err
	}
	for len(old) > 0 {
		n := min(len(old), migrateBatch)
		if err := b.migrateBatch(ctx, prefix, old[:n]); err != nil {
			return err
		}
		old = old[n:]
	}
	return nil
}

// migrateBatch moves the layout 1 records entries, under prefix, to their
// keys in this layout, in one batch.
func (b *datastoreBackend) migrateBatch(ctx context.Context, prefix string, entries []string) error {
	batch, err := b.ds.Batch(ctx)
	if err != nil {
		return err
	}
	for _, entry := range entries {
		key, err := layout1Key(prefix, entry)
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

// layout1Key returns the key in this layout of entry, a key under prefix
// in layout 1: prefix, then, in an index, the hex of a value's digest or
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
