package cluster

import (
	"context"
	"iter"
	"strconv"

	"github.com/scopemesh/scopemesh/events"
)

// Workload is the input of a benchmark that records events: event i is an
// HTTP request's attributes and a small JSON payload, about 300 bytes once
// Record has stamped and sealed it — the size the library's own benchmarks
// use — and every eight consecutive events share a trace, as a request's
// hops would. It is built before the clock starts, so that a run times
// Record and not the making of its input; a Workload is safe for
// concurrent use.
type Workload struct {
	samples []events.Event    // event i is samples[i%len(samples)]
	traces  []context.Context // event i's is traces[(i/TraceEvents)%len(traces)]
}

// TraceEvents is how many consecutive events of a Workload share a trace.
const TraceEvents = 8

// Share returns, in order, the events of n that caller k of callers
// records: whole traces, k, k+callers, k+2·callers, …, each trace's events
// one after another, as the handler of a request records its hops.
// Together the callers record every event once.
func Share(k, callers, n int) iter.Seq[int] {
	return func(yield func(int) bool) {
		for t := k; t*TraceEvents < n; t += callers {
			for i := t * TraceEvents; i < min((t+1)*TraceEvents, n); i++ {
				if !yield(i) {
					return
				}
			}
		}
	}
}

// distinctSamples is the number of distinct events a workload cycles
// through: the request paths repeat with it.
const distinctSamples = 10_000

// NewWorkload returns the workload of n events, under ctx.
func NewWorkload(ctx context.Context, n int) *Workload {
	w := &Workload{
		samples: make([]events.Event, distinctSamples),
		traces:  make([]context.Context, 1+n/TraceEvents),
	}
	for i := range w.samples {
		w.samples[i] = events.Event{
			Kind: "http.request",
			Attrs: map[string]string{
				"method": "GET",
				"path":   "/api/v1/items/" + strconv.Itoa(i),
				"status": "200",
				"user":   "user-" + strconv.Itoa(i%1000),
			},
			Payload: []byte(`{"bytes":52133,"cached":true}`),
		}
	}
	for i := range w.traces {
		w.traces[i] = events.ContextWithTrace(ctx, events.NewTraceID())
	}
	return w
}

// Event returns the context and the event to record as event i.
func (w *Workload) Event(i int) (context.Context, events.Event) {
	return w.traces[(i/TraceEvents)%len(w.traces)], w.samples[i%len(w.samples)]
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
