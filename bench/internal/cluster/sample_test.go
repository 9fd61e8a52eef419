package cluster

import "testing"

func TestShareCoversEveryEventOnceInWholeTraces(t *testing.T) {
	for _, c := range []struct{ callers, n int }{{1, 17}, {3, 8}, {8, 200}, {5, 61}, {4, 3}} {
		seen := make([]int, c.n)
		for k := range c.callers {
			prev := -1
			for i := range Share(k, c.callers, c.n) {
				seen[i]++
				// Within a trace a caller takes the next event; it moves
				// on only at the start of one.
				if prev >= 0 && i != prev+1 && i%TraceEvents != 0 {
					t.Fatalf("%+v: caller %d took event %d after %d", c, k, i, prev)
				}
				if (i/TraceEvents)%c.callers != k {
					t.Fatalf("%+v: caller %d took event %d of another caller's trace", c, k, i)
				}
				prev = i
			}
		}
		for i, times := range seen {
			if times != 1 {
				t.Fatalf("%+v: event %d recorded %d times", c, i, times)
			}
		}
	}
}
