package scopemesh_test

import (
	"context"
	"fmt"
	"log"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/query"
)

// A request recorded as two events of one trace, then read back.
func Example() {
	ctx := context.Background()
	// An in-memory node of no named cluster: it looks for no peers.
	node, err := scopemesh.Open(ctx, scopemesh.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()

	// Every event recorded with this context belongs to one trace.
	ctx = events.ContextWithTrace(ctx, events.NewTraceID())
	req, err := node.Record(ctx, events.Event{Kind: "http.request", Attrs: map[string]string{"path": "/cart"}})
	if err != nil {
		log.Fatal(err)
	}
	// Events recorded under the request name it as their parent.
	ctx = events.ContextWithParent(ctx, req.ID)
	if _, err := node.Record(ctx, events.Event{Kind: "db.query", Attrs: map[string]string{"table": "carts"}}); err != nil {
		log.Fatal(err)
	}

	evs, err := node.Query(ctx, query.Filter{Correlation: req.Correlation})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range evs {
		fmt.Println(e.Kind, e.Attrs, "child of the request:", e.Parent == req.ID)
	}
	// Output:
	// http.request map[path:/cart] child of the request: false
	// db.query map[table:carts] child of the request: true
}
