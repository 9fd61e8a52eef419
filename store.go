package scopemesh

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/scopemesh/scopemesh/internal/pebblestore"
)

// Keys of the node's own records in the datastore, beside the event set's.
var (
	clockBoundKey = datastore.NewKey("/meta/hlc-upper")
	identityKey   = datastore.NewKey("/meta/identity")
	membersKey    = datastore.NewKey("/meta/members")
)

// identityFile is the name of the identity key file in DataDir.
const identityFile = "identity.key"

// ErrDataDirInUse reports a DataDir that another open Node holds.
var ErrDataDirInUse = errors.New("scopemesh: data dir in use by another node")

// lockFile is the name of the file in DataDir that a node holds locked.
const lockFile = "LOCK"

// openStore returns the datastore cfg names and a function that releases
// what openStore took: the store if it opened one, and DataDir's lock.
func openStore(cfg Config) (datastore.Batching, func() error, error) {
	release := func() error { return nil }
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("scopemesh: creating data dir: %w", err)
		}
		// Pebble locks its own directory too, but this lock also covers
		// the identity file and a DataDir whose events live in a
		// Datastore, and it names the problem.
		lock, err := vfs.Default.Lock(filepath.Join(cfg.DataDir, lockFile))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %v", ErrDataDirInUse, cfg.DataDir, err)
		}
		release = lock.Close
	}
	if cfg.Datastore != nil {
		return cfg.Datastore, release, nil
	}
	if cfg.DataDir == "" {
		// The events live in the set itself (crdt.NewMemory); this holds
		// what else a node keeps, such as the DHT's records, which are few.
		ds := dssync.MutexWrap(datastore.NewMapDatastore())
		return ds, ds.Close, nil
	}
	var opts pebblestore.Options
	if cfg.SyncWrites {
		opts.SyncInterval = -1
	}
	path := filepath.Join(cfg.DataDir, "store")
	ds, err := pebblestore.Open(path, opts)
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("scopemesh: opening the store in %q: %w", path, err)
	}
	return ds, func() error { return errors.Join(ds.Close(), release()) }, nil
}

// loadIdentity returns the node's private key: from DataDir's key file, else
// from a datastore the user brought, else a fresh one. A key it creates is
// saved where it would be loaded from.
func loadIdentity(ctx context.Context, cfg Config, ds datastore.Datastore) (crypto.PrivKey, error) {
	switch {
	case cfg.DataDir != "":
		path := filepath.Join(cfg.DataDir, identityFile)
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return createIdentity(func(b []byte) error { return writeFileAtomic(path, b, 0o600) })
		}
		if err != nil {
			return nil, fmt.Errorf("scopemesh: reading identity: %w", err)
		}
		return unmarshalIdentity(data, path)
	case cfg.Datastore != nil:
		data, err := ds.Get(ctx, identityKey)
		if errors.Is(err, datastore.ErrNotFound) {
			return createIdentity(func(b []byte) error { return ds.Put(ctx, identityKey, b) })
		}
		if err != nil {
			return nil, fmt.Errorf("scopemesh: reading identity: %w", err)
		}
		return unmarshalIdentity(data, identityKey.String())
	}
	return createIdentity(nil)
}

func createIdentity(save func([]byte) error) (crypto.PrivKey, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("scopemesh: generating identity: %w", err)
	}
	if save == nil {
		return key, nil
	}
	data, err := crypto.MarshalPrivateKey(key)
	if err == nil {
		err = save(data)
	}
	if err != nil {
		return nil, fmt.Errorf("scopemesh: saving identity: %w", err)
	}
	return key, nil
}

func unmarshalIdentity(data []byte, where string) (crypto.PrivKey, error) {
	key, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("scopemesh: identity in %s is unreadable: %w", where, err)
	}
	return key, nil
}

// writeFileAtomic writes data to path through a temporary file, so a crash
// leaves either the old file or the new one.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// loadClockBound returns the clock's last persisted upper bound (0 if none).
func loadClockBound(ctx context.Context, ds datastore.Datastore) (int64, error) {
	data, err := ds.Get(ctx, clockBoundKey)
	if errors.Is(err, datastore.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("scopemesh: reading the clock bound: %w", err)
	}
	if len(data) != 8 {
		return 0, fmt.Errorf("scopemesh: clock bound record has %d bytes, want 8", len(data))
	}
	return int64(binary.BigEndian.Uint64(data)), nil
}

// clockBoundSaver returns the hlc.Config.Persist function that stores the
// clock's upper bound durably.
func clockBoundSaver(ds datastore.Datastore) func(int64) error {
	return func(upper int64) error {
		ctx := context.Background()
		if err := ds.Put(ctx, clockBoundKey, binary.BigEndian.AppendUint64(nil, uint64(upper))); err != nil {
			return err
		}
		return ds.Sync(ctx, clockBoundKey)
	}
}

// loadMembers reads the member records the node saved when it last ran;
// none if it never saved any.
func loadMembers(ctx context.Context, ds datastore.Datastore) ([]byte, error) {
	data, err := ds.Get(ctx, membersKey)
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("scopemesh: reading the saved member records: %w", err)
	}
	return data, nil
}

// membersSaver returns the peer.Config.SaveMembers function that keeps the
// member records in the datastore. They need not be synced: a node that
// loses the latest starts from older ones, or from Bootstrap.
func membersSaver(ds datastore.Datastore) func([]byte) error {
	return func(records []byte) error {
		return ds.Put(context.Background(), membersKey, records)
	}
}
