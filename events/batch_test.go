package events

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/scopemesh/scopemesh/hlc"
)

// sealedBatch returns n sealed, distinct typical events.
func sealedBatch(t testing.TB, n int) []Event {
	t.Helper()
	evs := make([]Event, n)
	for i := range evs {
		e := typicalEvent()
		e.Time.Wall += int64(i)
		e.Attrs = map[string]string{"i": fmt.Sprint(i), "method": "GET", "path": "/api/v1/orders"}
		evs[i] = mustSeal(t, e)
	}
	return evs
}

func TestBatchRoundTrip(t *testing.T) {
	random := func(n int) []Event {
		evs := make([]Event, n)
		for i := range evs {
			e := minimalEvent()
			e.Payload = make([]byte, 200)
			rand.Read(e.Payload)
			evs[i] = mustSeal(t, e)
		}
		return evs
	}
	cases := map[string]struct {
		evs        []Event
		compressed bool
	}{
		"empty":                    {nil, false},
		"one":                      {sealedBatch(t, 1), false},
		"small, not compressed":    {sealedBatch(t, 5), false},
		"large, compressed":        {sealedBatch(t, 500), true},
		"large but incompressible": {random(100), false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := EncodeBatch(c.evs)
			if err != nil {
				t.Fatal(err)
			}
			if got := b[1] == compressZstd; got != c.compressed {
				t.Fatalf("compressed = %v, want %v (%d bytes)", got, c.compressed, len(b))
			}
			got, err := DecodeBatch(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.evs) {
				t.Fatalf("decoded %d events, want %d", len(got), len(c.evs))
			}
			for i := range got {
				if !reflect.DeepEqual(got[i], c.evs[i]) {
					t.Fatalf("event %d:\n got %+v\nwant %+v", i, got[i], c.evs[i])
				}
			}
		})
	}
}

func TestBatchCompressionPays(t *testing.T) {
	evs := sealedBatch(t, 500)
	b := mustEncodeBatch(t, Limits{}, evs...)
	raw := 0
	for _, e := range evs {
		raw += len(mustMarshal(t, e))
	}
	if len(b) > raw/2 {
		t.Fatalf("compressed batch is %d bytes for %d bytes of events", len(b), raw)
	}
	t.Logf("%d events: %d bytes raw, %d compressed", len(evs), raw, len(b))
	// DecodeBatch relies on the frame declaring its size to refuse a lying
	// header before it allocates.
	_, n1 := binary.Uvarint(b[2:])
	_, n2 := binary.Uvarint(b[2+n1:])
	frame := b[2+n1+n2:]
	var fh zstd.Header
	if err := fh.Decode(frame); err != nil || !fh.HasFCS || fh.FrameContentSize != uint64(raw) {
		t.Fatalf("zstd frame header %+v, %v: want content size %d", fh, err, raw)
	}
}

func TestEncodeBatchLimits(t *testing.T) {
	evs := sealedBatch(t, 10)
	if _, err := (Limits{MaxBatchEvents: 9}).EncodeBatch(evs); !errors.Is(err, ErrTooLarge) {
		t.Errorf("10 events, limit 9: %v", err)
	}
	if _, err := (Limits{MaxBatchEvents: 10}).EncodeBatch(evs); err != nil {
		t.Errorf("10 events, limit 10: %v", err)
	}
	size := 0
	for _, e := range evs {
		size += len(mustMarshal(t, e))
	}
	if _, err := (Limits{MaxBatchBytes: size - 1}).EncodeBatch(evs); !errors.Is(err, ErrTooLarge) {
		t.Errorf("%d bytes, limit one less: %v", size, err)
	}
	b, err := (Limits{MaxBatchBytes: size}).EncodeBatch(evs)
	if err != nil {
		t.Fatalf("%d bytes, limit equal: %v", size, err)
	}
	if _, err := (Limits{MaxBatchBytes: size - 1}).DecodeBatch(b); !errors.Is(err, ErrTooLarge) {
		t.Errorf("decode %d bytes, limit one less: %v", size, err)
	}
	if _, err := (Limits{MaxBatchEvents: 9}).DecodeBatch(b); !errors.Is(err, ErrTooLarge) {
		t.Errorf("decode 10 events, limit 9: %v", err)
	}
	tampered := sealedBatch(t, 3)
	tampered[1].Kind = "changed"
	if _, err := EncodeBatch(tampered); !errors.Is(err, ErrIDMismatch) || !strings.Contains(err.Error(), "event 1") {
		t.Errorf("tampered event: %v", err)
	}
}

// header returns a batch header with the given fields.
func header(version, compression byte, count, size uint64) []byte {
	b := []byte{version, compression}
	b = binary.AppendUvarint(b, count)
	return binary.AppendUvarint(b, size)
}

func TestDecodeBatchRejects(t *testing.T) {
	good := mustEncodeBatch(t, Limits{}, sealedBatch(t, 3)...)
	one := mustMarshal(t, sealedBatch(t, 1)[0])
	tampered := bytes.Clone(good)
	tampered[len(tampered)-1] ^= 1 // inside the last event's payload

	cases := map[string]struct {
		b    []byte
		want error
	}{
		"nil":                  {nil, ErrInvalid},
		"version 0":            {append([]byte{0}, good[1:]...), ErrVersion},
		"version 2":            {append([]byte{2}, good[1:]...), ErrVersion},
		"unknown compression":  {append([]byte{1, 7}, good[2:]...), ErrInvalid},
		"no counts":            {[]byte{1, 0}, ErrInvalid},
		"truncated uvarint":    {[]byte{1, 0, 0x80}, ErrInvalid},
		"overflowing uvarint":  {append([]byte{1, 0}, bytes.Repeat([]byte{0xff}, 11)...), ErrInvalid},
		"long uvarint":         {append([]byte{1, 0, 0x81, 0x00}, 0), ErrInvalid},
		"2^60 events":          {header(1, 0, 1<<60, 100), ErrTooLarge},
		"1 GiB":                {header(1, 0, 1, 1<<30), ErrTooLarge},
		"1 GiB compressed":     {header(1, 1, 1, 1<<30), ErrTooLarge},
		"more events than fit": {append(header(1, 0, 2, uint64(len(one))), one...), ErrInvalid},
		"fewer events":         {append(append(header(1, 0, 1, uint64(2*len(one))), one...), one...), ErrInvalid},
		"body shorter":         {append(header(1, 0, 1, uint64(len(one)+1)), one...), ErrInvalid},
		"body longer":          {append(append(header(1, 0, 1, uint64(len(one))), one...), 0), ErrInvalid},
		"not zstd":             {append(header(1, 1, 1, uint64(len(one))), one...), ErrInvalid},
		"tampered event":       {tampered, ErrIDMismatch},
	}
	for name, c := range cases {
		_, err := DecodeBatch(c.b)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

func TestDecodeBatchHugeHeaderAllocatesLittle(t *testing.T) {
	// A header may claim anything; it must be refused before anything of
	// its claimed size is allocated.
	for _, b := range [][]byte{
		header(1, 0, 1<<60, 1<<40),
		header(1, 0, 1, 1<<30),
		header(1, 1, 1<<30, 1<<30),
		header(1, 1, 1000, uint64(DefaultLimits.MaxBatchBytes)), // plausible, but nothing follows
	} {
		var err error
		allocs := testing.AllocsPerRun(100, func() { _, err = DecodeBatch(b) })
		if err == nil {
			t.Fatalf("%x: accepted", b)
		}
		bytes := allocatedBytes(func() { DecodeBatch(b) })
		t.Logf("%x: %v; %.0f allocations, %d bytes", b, err, allocs, bytes)
		if allocs > 10 || bytes > 64<<10 {
			t.Errorf("%x: %.0f allocations, %d bytes", b, allocs, bytes)
		}
	}
}

// allocatedBytes returns the bytes f allocates, averaged over runs after a
// first one that warms pools.
func allocatedBytes(f func()) uint64 {
	f()
	const runs = 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / runs
}

func TestDecodeBatchZipBomb(t *testing.T) {
	// 256 MiB of zeros compress to a few KiB. With a header that declares
	// a plausible size, decompression must stop near that size.
	var bomb bytes.Buffer
	w, err := zstd.NewWriter(&bomb, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(w, zeroReader{}, 256<<20); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// The streaming writer leaves the content size out of the frame header,
	// so only the output bound can stop it. Also try a frame that declares
	// its size, which the decoder refuses up front.
	declared := zstdEncoder().EncodeAll(make([]byte, 8<<20), nil)
	for name, frame := range map[string][]byte{"streamed": bomb.Bytes(), "declared": declared} {
		b := append(header(1, 1, 100, 64<<10), frame...)
		var derr error
		n := allocatedBytes(func() { _, derr = DecodeBatch(b) })
		if !errors.Is(derr, ErrTooLarge) {
			t.Errorf("%s bomb (%d bytes): %v, want ErrTooLarge", name, len(frame), derr)
		}
		t.Logf("%s bomb of %d bytes: %v; %d bytes allocated", name, len(frame), derr, n)
		if n > 2<<20 {
			t.Errorf("%s bomb: %d bytes allocated", name, n)
		}
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestDecodeBatchIsolatedFromInput(t *testing.T) {
	evs := sealedBatch(t, 3)
	b := mustEncodeBatch(t, Limits{}, evs...)
	got, err := DecodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	clear(b)
	for i := range got {
		if err := Verify(got[i]); err != nil {
			t.Fatalf("event %d changed with its input: %v", i, err)
		}
	}
}

func TestDecodeBatchUnaffectedByPayloadAliasing(t *testing.T) {
	e := mustSeal(t, Event{Node: "n", Kind: "k", Time: hlc.Timestamp{Wall: 1}, Payload: []byte("abc")})
	b := mustEncodeBatch(t, Limits{}, e)
	got, err := DecodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	got[0].Payload[0] = 'x'
	if again, _ := DecodeBatch(b); string(again[0].Payload) != "abc" {
		t.Fatal("decoded payload shares memory with the input")
	}
}
