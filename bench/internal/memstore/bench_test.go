package memstore

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
)

// The benchmark store has the shape of the event set's node index: 1,000
// nodes with 1,000 entries each, 1M keys of the form /n/<node>/<key>, empty
// values.
const (
	benchNodes   = 1000
	benchPerNode = 1000
)

// benchKey returns the key of node n's entry i: hex of the node's name, then
// 88 hex digits, the length of a crdt key, in an order unrelated to i.
func benchKey(n, i int) string {
	var k [48]byte
	r := rand.New(rand.NewPCG(uint64(n), uint64(i)))
	for j := 0; j < len(k); j += 8 {
		binary.BigEndian.PutUint64(k[j:], r.Uint64())
	}
	return benchPrefix(n) + "/" + hex.EncodeToString(k[:44])
}

func benchPrefix(n int) string {
	return "/n/" + hex.EncodeToString(fmt.Appendf(nil, "node-%04d", n))
}

type benchStores struct {
	mem   *Store
	mapds ds.Batching
	keys  []ds.Key
}

type namedStore struct {
	name string
	d    ds.Datastore
}

func (b benchStores) stores() []namedStore {
	return []namedStore{{"memstore", b.mem}, {"mapds", b.mapds}}
}

// loadBench builds the benchmark stores once per test binary: filling 1M
// keys takes longer than most benchmarks run.
var loadBench = sync.OnceValue(func() benchStores {
	ctx := context.Background()
	b := benchStores{mem: New(), mapds: dssync.MutexWrap(ds.NewMapDatastore())}
	for n := range benchNodes {
		for i := range benchPerNode {
			k := ds.RawKey(benchKey(n, i))
			b.keys = append(b.keys, k)
			if err := b.mem.Put(ctx, k, nil); err != nil {
				panic(err)
			}
			if err := b.mapds.Put(ctx, k, nil); err != nil {
				panic(err)
			}
		}
	}
	return b
})

// BenchmarkPut writes new 100-byte values into a store of 1M keys.
func BenchmarkPut(b *testing.B) {
	fresh := make([]ds.Key, 1<<20)
	for i := range fresh {
		fresh[i] = ds.RawKey(benchKey(benchNodes+i%benchNodes, i))
	}
	value := make([]byte, 100)
	for _, st := range []struct {
		name string
		new  func() ds.Datastore
	}{
		{"memstore", func() ds.Datastore { return New() }},
		{"mapds", func() ds.Datastore { return dssync.MutexWrap(ds.NewMapDatastore()) }},
	} {
		b.Run(st.name, func(b *testing.B) {
			ctx := b.Context()
			d := st.new()
			for _, k := range loadBench().keys {
				if err := d.Put(ctx, k, nil); err != nil {
					b.Fatal(err)
				}
			}
			i := 0
			for b.Loop() {
				if err := d.Put(ctx, fresh[i%len(fresh)], value); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkGet reads random keys of a store of 1M keys.
func BenchmarkGet(b *testing.B) {
	bs := loadBench()
	for _, st := range bs.stores() {
		b.Run(st.name, func(b *testing.B) {
			ctx := b.Context()
			r := rand.New(rand.NewPCG(0, 0))
			for b.Loop() {
				if _, err := st.d.Get(ctx, bs.keys[r.IntN(len(bs.keys))]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPrefixQuery reads one node's 1,000 index entries, keys only, out
// of 1M keys: all of them, and the first 10 in descending order as a
// bounded index scan does, from the Store and from the map-backed store it
// replaces.
func BenchmarkPrefixQuery(b *testing.B) {
	bs := loadBench()
	queries := []struct {
		name  string
		q     dsq.Query
		count int
	}{
		{"all", dsq.Query{KeysOnly: true, Orders: []dsq.Order{dsq.OrderByKey{}}}, benchPerNode},
		{"first10desc", dsq.Query{KeysOnly: true, Orders: []dsq.Order{dsq.OrderByKeyDescending{}}}, 10},
	}
	for _, qq := range queries {
		for _, st := range bs.stores() {
			b.Run(qq.name+"/"+st.name, func(b *testing.B) {
				ctx := b.Context()
				r := rand.New(rand.NewPCG(0, 0))
				for b.Loop() {
					q := qq.q
					q.Prefix = benchPrefix(r.IntN(benchNodes))
					res, err := st.d.Query(ctx, q)
					if err != nil {
						b.Fatal(err)
					}
					for n := range qq.count {
						e, ok := res.NextSync()
						if !ok || e.Error != nil {
							b.Fatalf("result %d: %v, %v", n, e.Error, ok)
						}
					}
					res.Close()
				}
			})
		}
	}
}
