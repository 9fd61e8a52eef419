package rbsr_test

import (
	"context"
	"fmt"
	"slices"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/internal/fixture"
	"github.com/scopemesh/scopemesh/rbsr"
)

// Two replicas that shared 1,000 events, then recorded a few each apart,
// find what the other lacks.
func ExampleReconciler() {
	ctx := context.Background()
	g := fixture.New(1, 2)
	common, mine, theirs := g.Batch(1000), g.Batch(3), g.Batch(2)
	local := crdt.NewMemory(crdt.Options{})
	remote := crdt.NewMemory(crdt.Options{})
	local.Merge(ctx, slices.Concat(common, mine))
	remote.Merge(ctx, slices.Concat(common, theirs))

	init, _ := rbsr.NewReconciler(local, rbsr.Options{})
	resp, _ := rbsr.NewReconciler(remote, rbsr.Options{})
	msg, _ := init.Initiate()
	for {
		reply, err := resp.Respond(msg) // across the network, in real use
		if err != nil {
			panic(err)
		}
		next, done, err := init.Reconcile(reply)
		if err != nil {
			panic(err)
		}
		if done {
			break
		}
		msg = next
	}
	fmt.Println("round trips:", init.Rounds())
	fmt.Println("only here:", len(init.Have()), "only there:", len(init.Need()))
	// Output:
	// round trips: 1
	// only here: 3 only there: 2
}
