package cluster

import (
	"context"
	"strconv"

	"github.com/scopemesh/scopemesh/events"
)

// Sample returns the i-th event of a benchmark workload, ready for Record:
// an HTTP request's attributes and a small JSON payload, about 300 bytes
// once Record has stamped and sealed it — the size the library's own
// benchmarks use.
func Sample(i int) events.Event {
	return events.Event{
		Kind: "http.request",
		Attrs: map[string]string{
			"method": "GET",
			"path":   "/api/v1/items/" + strconv.Itoa(i%10_000),
			"status": "200",
			"user":   "user-" + strconv.Itoa(i%1000),
		},
		Payload: []byte(`{"bytes":52133,"cached":true}`),
	}
}

// TraceContext returns ctx carrying the trace that event i of a workload
// belongs to: every eight consecutive events share one, as a request's
// hops would.
func TraceContext(ctx context.Context, traces []events.TraceID, i int) context.Context {
	return events.ContextWithTrace(ctx, traces[(i/8)%len(traces)])
}

// Traces returns n trace IDs for TraceContext.
func Traces(n int) []events.TraceID {
	out := make([]events.TraceID, n)
	for i := range out {
		out[i] = events.NewTraceID()
	}
	return out
}

// EncodedSize returns the size of evs encoded as sync sends them: batches
// of batchEvents events, each compressed on its own. It is the yardstick of
// heal traffic — no protocol can deliver the events in fewer bytes
// without a better codec.
func EncodedSize(evs []events.Event) (int64, error) {
	var total int64
	for len(evs) > 0 {
		n := min(len(evs), batchEvents)
		data, err := events.EncodeBatch(evs[:n])
		if err != nil {
			return 0, err
		}
		total += int64(len(data))
		evs = evs[n:]
	}
	return total, nil
}

// batchEvents is how many ~300-byte events a sync batch carries: sync cuts
// batches at about 512 KiB of estimated size, which its estimate (a fixed
// 128 bytes plus the variable fields) reaches at around 1,500 such events.
// Compression gains little beyond a thousand.
const batchEvents = 1024
