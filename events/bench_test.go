package events

import (
	"context"
	"testing"
)

// BenchmarkSeal seals a typical event of about 300 bytes. Target: at most
// 1.5 µs and 4 allocations.
func BenchmarkSeal(b *testing.B) {
	e := typicalEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Seal(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	e := mustSeal(b, typicalEvent())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	buf := mustMarshal(b, mustSeal(b, typicalEvent()))
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Unmarshal(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeBatch decodes and verifies batches of 100 typical events.
// Target: at most 1.5 µs per event.
func BenchmarkDecodeBatch(b *testing.B) {
	const n = 100
	evs := sealedBatch(b, n)
	compressed := mustEncodeBatch(b, Limits{}, evs...)
	if compressed[1] != compressZstd {
		b.Fatal("batch not compressed")
	}
	size := 0
	for _, e := range evs {
		size += len(mustMarshal(b, e))
	}
	raw := header(batchVersion, compressNone, n, uint64(size))
	for _, e := range evs {
		raw = append(raw, mustMarshal(b, e)...)
	}
	for _, c := range []struct {
		name  string
		batch []byte
	}{{"zstd", compressed}, {"raw", raw}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.batch)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeBatch(c.batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
		})
	}
}

func BenchmarkEncodeBatch(b *testing.B) {
	const n = 100
	evs := sealedBatch(b, n)
	b.ReportAllocs()
	var batch []byte
	for b.Loop() {
		var err error
		if batch, err = EncodeBatch(evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
	b.ReportMetric(float64(len(batch))/n, "B/event")
}

// BenchmarkEncodeBatchEncoded batches 1,000 encoded events, as a node's
// gossip publisher does: the time is mostly compression's.
//
//	go test -run '^$' -bench EncodeBatchEncoded ./events
func BenchmarkEncodeBatchEncoded(b *testing.B) {
	const n = 1000
	evs := sealedBatch(b, n)
	xs := make([]Encoded, n)
	for i, e := range evs {
		var err error
		if xs[i], err = DefaultLimits.Encode(e); err != nil {
			b.Fatal(err)
		}
	}
	var batch []byte
	for b.Loop() {
		var err error
		if batch, err = DefaultLimits.EncodeBatchEncoded(xs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
	b.ReportMetric(float64(len(batch))/n, "B/event")
}

// The reflective codec the hand-written one replaces, for comparison.
func BenchmarkReference(b *testing.B) {
	e := mustSeal(b, typicalEvent())
	b.Run("encode", func(b *testing.B) {
		c := refContentOf(e)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := refEnc.Marshal(c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		buf := mustMarshal(b, e)
		b.ReportAllocs()
		for b.Loop() {
			var d refDecoded
			if err := refDec.Unmarshal(buf, &d); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkPropagation(b *testing.B) {
	clock, _ := manualClock(b, 0)
	p := Propagator{Clock: clock}
	ctx, _ := tracedContext(mustSeal(b, typicalEvent()).ID)
	b.Run("Inject", func(b *testing.B) {
		c := MapCarrier{}
		b.ReportAllocs()
		for b.Loop() {
			p.Inject(ctx, c)
		}
	})
	b.Run("Extract", func(b *testing.B) {
		c := MapCarrier{}
		p.Inject(ctx, c)
		b.ReportAllocs()
		for b.Loop() {
			p.Extract(context.Background(), c)
		}
	})
}
