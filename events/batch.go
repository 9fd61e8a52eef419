package events

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// A batch is the unit peers exchange: a header, then the wire forms of its
// events back to back, possibly compressed as one zstd frame.
//
//	byte 0     format version, batchVersion
//	byte 1     compression: compressNone or compressZstd
//	uvarint    number of events
//	uvarint    length of the events' encoding before compression
//	...        the events, or a zstd frame that expands to them
//
// The two counts come first so that a reader can check them against its
// limits before it allocates or decompresses anything.
const (
	batchVersion = 1

	compressNone byte = 0
	compressZstd byte = 1

	// maxBatchHeaderLen is the longest header: two bytes and two uvarints.
	maxBatchHeaderLen = 2 + 2*binary.MaxVarintLen64

	// compressFrom is the smallest batch worth trying to compress. Below a
	// few KiB, zstd rarely saves enough to pay for the CPU time on both ends.
	compressFrom = 4 << 10
)

// EncodeBatch encodes events as one batch under DefaultLimits. See
// Limits.EncodeBatch.
func EncodeBatch(evs []Event) ([]byte, error) { return DefaultLimits.EncodeBatch(evs) }

// DecodeBatch decodes a batch under DefaultLimits. See Limits.DecodeBatch.
func DecodeBatch(b []byte) ([]Event, error) { return DefaultLimits.DecodeBatch(b) }

// EncodeBatch encodes sealed events as one batch. Every event must pass
// Verify, and the batch must fit MaxBatchEvents and MaxBatchBytes. A batch
// of at least 4 KiB is compressed if that saves a tenth of its size or more.
func (l Limits) EncodeBatch(evs []Event) ([]byte, error) {
	xs := make([]Encoded, len(evs))
	for i, e := range evs {
		var err error
		if xs[i], err = l.Encode(e); err != nil {
			return nil, fmt.Errorf("event %d of batch: %w", i, err)
		}
	}
	return l.EncodeBatchEncoded(xs)
}

// EncodeBatchEncoded is EncodeBatch for encoded events: those encoded under
// l go into the batch as they are, without encoding or hashing them again.
func (l Limits) EncodeBatchEncoded(xs []Encoded) ([]byte, error) {
	l, err := l.resolve()
	if err != nil {
		return nil, err
	}
	if len(xs) > l.MaxBatchEvents {
		return nil, fmt.Errorf("%w: batch has %d events, limit %d", ErrTooLarge, len(xs), l.MaxBatchEvents)
	}
	bp := getBuffer(0)
	defer putBuffer(bp)
	for i, x := range xs {
		if !x.CheckedUnder(l) {
			if x, err = l.Encode(x.Event()); err != nil {
				return nil, fmt.Errorf("event %d of batch: %w", i, err)
			}
		}
		if size := len(*bp) + len(x.wire); size > l.MaxBatchBytes {
			return nil, fmt.Errorf("%w: batch events encode to more than %d bytes, limit %d", ErrTooLarge, size, l.MaxBatchBytes)
		}
		*bp = append(*bp, x.wire...)
	}
	return finishBatch(*bp, len(xs)), nil
}

// finishBatch returns the batch of count events whose wire forms body holds:
// the header, then body, compressed if that pays.
func finishBatch(body []byte, count int) []byte {
	size := len(body)
	var hb [maxBatchHeaderLen]byte
	h := append(hb[:0], batchVersion, compressNone)
	h = binary.AppendUvarint(h, uint64(count))
	h = binary.AppendUvarint(h, uint64(size))

	if size >= compressFrom {
		zp := getBuffer(size)
		defer putBuffer(zp)
		*zp = zstdEncoder().EncodeAll(body, (*zp)[:0])
		if len(*zp) <= size-size/10 {
			h[1] = compressZstd
			body = *zp
		}
	}
	out := make([]byte, 0, len(h)+len(body))
	return append(append(out, h...), body...)
}

// DecodeBatch decodes a batch. It checks the header against MaxBatchEvents
// and MaxBatchBytes before it allocates or decompresses, bounds
// decompression by the length the header declares, and verifies every event
// as Unmarshal does; one bad event fails the whole batch. Events do not
// share memory with b.
func (l Limits) DecodeBatch(b []byte) ([]Event, error) {
	xs, err := l.decodeBatch(nil, b, false, nil)
	if err != nil {
		return nil, err
	}
	evs := make([]Event, len(xs))
	for i, x := range xs {
		evs[i] = x.event
	}
	return evs, nil
}

// DecodeBatchEncoded is DecodeBatch returning each event with its wire form,
// so that it can be stored or sent on without encoding or hashing it again.
// It checks the events as DecodeBatch does, but leaves their Attrs and
// Payload in the wire form until Encoded.Event is called: storing or
// forwarding an event needs neither, and building them is much of what
// replicating an event costs.
func (l Limits) DecodeBatchEncoded(b []byte) ([]Encoded, error) { return l.AppendBatchEncoded(nil, b) }

// AppendBatchEncoded is DecodeBatchEncoded appending the events to dst, so
// that a reader of batch after batch can decode each into the slice of one
// it is done with. On error it returns nil.
func (l Limits) AppendBatchEncoded(dst []Encoded, b []byte) ([]Encoded, error) {
	return l.decodeBatch(dst, b, true, nil)
}

// AppendBatchInPlace is AppendBatchEncoded for a reader that is done with
// a batch's events before it decodes the next: their wire forms are not
// copies but share memory with b or, if the batch is compressed, with
// *scratch, into which it is expanded. AppendBatchInPlace grows *scratch as
// needed and leaves it for the next call. Neither b nor *scratch may change
// while the events are in use; Encoded.Clone makes one that does not share
// them.
func (l Limits) AppendBatchInPlace(dst []Encoded, b []byte, scratch *[]byte) ([]Encoded, error) {
	return l.decodeBatch(dst, b, true, scratch)
}

// decodeBatch appends the events of a batch to dst, decoding them lazily
// (decoder.lazy) if lazy. If scratch is nil, each event's wire form is a
// copy of its own; otherwise the events share the batch's memory, expanded
// into *scratch if it is compressed.
func (l Limits) decodeBatch(dst []Encoded, b []byte, lazy bool, scratch *[]byte) ([]Encoded, error) {
	l, err := l.resolve()
	if err != nil {
		return nil, err
	}
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: batch of %d bytes has no header", ErrInvalid, len(b))
	}
	if b[0] != batchVersion {
		return nil, fmt.Errorf("%w: batch version %d, want %d", ErrVersion, b[0], batchVersion)
	}
	compression := b[1]
	count, i, err := uvarint(b, 2, "event count")
	if err != nil {
		return nil, err
	}
	size, i, err := uvarint(b, i, "batch length")
	if err != nil {
		return nil, err
	}
	switch {
	case count > uint64(l.MaxBatchEvents):
		return nil, fmt.Errorf("%w: batch has %d events, limit %d", ErrTooLarge, count, l.MaxBatchEvents)
	case size > uint64(l.MaxBatchBytes):
		return nil, fmt.Errorf("%w: batch events are %d bytes, limit %d", ErrTooLarge, size, l.MaxBatchBytes)
	case count > size/uint64(minEventLen):
		return nil, fmt.Errorf("%w: %d events cannot fit in %d bytes", ErrInvalid, count, size)
	}
	body := b[i:]

	switch compression {
	case compressNone:
		if uint64(len(body)) != size {
			return nil, fmt.Errorf("%w: batch events are %d bytes, header says %d", ErrInvalid, len(body), size)
		}
	case compressZstd:
		// The frame header may declare the content size (EncodeAll always
		// does); a frame that declares another size is refused before
		// anything is allocated for it.
		var fh zstd.Header
		switch err := fh.Decode(body); {
		case err != nil:
			return nil, fmt.Errorf("%w: batch compression: zstd frame header: %v", ErrInvalid, err)
		case fh.Skippable:
			return nil, fmt.Errorf("%w: batch compression: skippable zstd frame", ErrInvalid)
		case fh.HasFCS && fh.FrameContentSize > size:
			return nil, fmt.Errorf("%w: batch expands to %d bytes, header says %d", ErrTooLarge, fh.FrameContentSize, size)
		case fh.HasFCS && fh.FrameContentSize < size:
			return nil, fmt.Errorf("%w: batch expands to %d bytes, header says %d", ErrInvalid, fh.FrameContentSize, size)
		}
		// The decoder stops at the capacity of its output, so a frame that
		// expands beyond the declared length fails after at most one block.
		// It reports that with a sentinel or, from inside a block, with an
		// untyped error after filling the output: both mean too large.
		bp := scratch
		if bp == nil {
			bp = getBuffer(0)
			defer putBuffer(bp)
		}
		if uint64(cap(*bp)) < size {
			*bp = make([]byte, 0, size)
		}
		out, err := zstdDecoder().DecodeAll(body, (*bp)[:0:size])
		if err != nil {
			if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrFrameSizeExceeded) ||
				(size > 0 && uint64(len(out)) >= size && !errors.Is(err, zstd.ErrCRCMismatch)) {
				return nil, fmt.Errorf("%w: batch expands beyond the %d bytes its header declares: %v", ErrTooLarge, size, err)
			}
			return nil, fmt.Errorf("%w: batch compression: %v", ErrInvalid, err)
		}
		if uint64(len(out)) != size {
			return nil, fmt.Errorf("%w: batch expands to %d bytes, header says %d", ErrInvalid, len(out), size)
		}
		body = out
	default:
		return nil, fmt.Errorf("%w: batch compression %d", ErrInvalid, compression)
	}

	sp := getBuffer(0)
	defer putBuffer(sp)
	d := decoder{lim: l, scratch: *sp, lazy: lazy}
	defer func() { *sp = d.scratch }()
	out := slices.Grow(dst, int(count))[:len(dst)+int(count)]
	xs := out[len(dst):]
	checked := intern(l)
	for k := range xs {
		e, n, err := d.decodeEvent(body)
		if err != nil {
			return nil, fmt.Errorf("event %d of batch: %w", k, err)
		}
		wire := body[:n:n]
		if scratch == nil {
			// Each wire form is a copy of its own: slices of the batch
			// would keep the whole batch in memory for as long as any
			// one of its events is held, in a watch, say.
			wire = bytes.Clone(wire)
		}
		xs[k] = Encoded{e, wire, checked, lazy}
		body = body[n:]
	}
	if len(body) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last event of the batch", ErrInvalid, len(body))
	}
	return out, nil
}

// uvarint reads a header count at b[i:], which must be in shortest form so
// that a batch has one encoding.
func uvarint(b []byte, i int, what string) (uint64, int, error) {
	v, n := binary.Uvarint(b[i:])
	switch {
	case n == 0:
		return 0, 0, fmt.Errorf("%w: batch header truncated in the %s", ErrInvalid, what)
	case n < 0:
		return 0, 0, fmt.Errorf("%w: batch %s overflows 64 bits", ErrInvalid, what)
	case n != (bits.Len64(v|1)+6)/7:
		return 0, 0, fmt.Errorf("%w: batch %s not in shortest form", ErrInvalid, what)
	}
	return v, i + n, nil
}

// The zstd encoder and decoder are costly to create and safe for concurrent
// EncodeAll and DecodeAll, so the package shares one of each.
var (
	zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
		// Event IDs already detect corruption of the content, so the
		// frame checksum would only cost time and 4 bytes. A batch's
		// literals are mostly hashes and random IDs, which Huffman coding
		// does not shrink: without it a batch is as small and encodes
		// faster. Decoders need nothing new. A 32 KiB window, where the
		// default is 4 MiB and a batch at most 1 MiB, finds nearly every
		// match in less time.
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false),
			zstd.WithNoEntropyCompression(true), zstd.WithWindowSize(32<<10))
		if err != nil {
			panic("events: creating the zstd encoder: " + err.Error())
		}
		return enc
	})
	zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
		dec, err := zstd.NewReader(nil, zstd.WithDecodeAllCapLimit(true))
		if err != nil {
			panic("events: creating the zstd decoder: " + err.Error())
		}
		return dec
	})
)
