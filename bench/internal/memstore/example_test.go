package memstore_test

import (
	"context"
	"fmt"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"

	"github.com/scopemesh/scopemesh/bench/internal/memstore"
)

func Example() {
	ctx := context.Background()
	s := memstore.New()
	defer s.Close()
	for _, k := range []string{"/n/ab/01", "/n/ab/02", "/n/ab/03", "/n/abc/01", "/e/ff"} {
		if err := s.Put(ctx, ds.NewKey(k), nil); err != nil {
			panic(err)
		}
	}

	// The last two index entries under /n/ab, newest first.
	res, err := s.Query(ctx, dsq.Query{
		Prefix:   "/n/ab",
		KeysOnly: true,
		Orders:   []dsq.Order{dsq.OrderByKeyDescending{}},
		Limit:    2,
	})
	if err != nil {
		panic(err)
	}
	defer res.Close()
	for r, ok := res.NextSync(); ok; r, ok = res.NextSync() {
		if r.Error != nil {
			panic(r.Error)
		}
		fmt.Println(r.Key)
	}
	// Output:
	// /n/ab/03
	// /n/ab/02
}
