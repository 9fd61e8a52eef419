package hlc

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func TestTimestampCompare(t *testing.T) {
	cases := []struct {
		a, b Timestamp
		want int
	}{
		{Timestamp{1, 0}, Timestamp{1, 0}, 0},
		{Timestamp{1, 0}, Timestamp{2, 0}, -1},
		{Timestamp{2, 0}, Timestamp{1, math.MaxUint32}, 1},
		{Timestamp{1, 1}, Timestamp{1, 2}, -1},
		{Timestamp{-1, 5}, Timestamp{0, 0}, -1},
	}
	for _, c := range cases {
		if got := c.a.Compare(c.b); got != c.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := c.b.Compare(c.a); got != -c.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
}

func TestTimestampStringParse(t *testing.T) {
	for _, ts := range []Timestamp{{}, {1700000000123456789, 42}, {-5, math.MaxUint32}, {math.MaxInt64, 0}, {math.MinInt64, 1}} {
		s := ts.String()
		got, err := Parse(s)
		if err != nil || got != ts {
			t.Errorf("Parse(%q) = %v, %v; want %v", s, got, err, ts)
		}
	}
	if got := (Timestamp{Wall: 12, Logical: 3}).String(); got != "12.3" {
		t.Errorf("String = %q, want 12.3", got)
	}
	for _, bad := range []string{"", "12", "12.", ".3", "a.3", "12.b", "12.4294967296", "12.-1", "12.+1", "1.2.3", "99999999999999999999.0"} {
		if _, err := Parse(bad); !errors.Is(err, ErrInvalidTimestamp) {
			t.Errorf("Parse(%q) error = %v, want ErrInvalidTimestamp", bad, err)
		}
	}
}

func TestTimestampBinary(t *testing.T) {
	ts := Timestamp{Wall: 0x0102030405060708, Logical: 0x090a0b0c}
	b := ts.AppendBinary([]byte{0xff})
	want := []byte{0xff, 0x81, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	if !bytes.Equal(b, want) {
		t.Fatalf("AppendBinary = %x, want %x", b, want)
	}
	got, err := DecodeTimestamp(b[1:])
	if err != nil || got != ts {
		t.Fatalf("DecodeTimestamp = %v, %v; want %v", got, err, ts)
	}
	if _, err := DecodeTimestamp(b[1:EncodedLen]); !errors.Is(err, ErrInvalidTimestamp) {
		t.Fatalf("DecodeTimestamp of 11 bytes: %v, want ErrInvalidTimestamp", err)
	}
}

// FuzzEncodingOrder checks that the byte order of encodings is the Compare
// order, and that encoding and text round-trip.
func FuzzEncodingOrder(f *testing.F) {
	f.Add(int64(0), uint32(0), int64(0), uint32(1))
	f.Add(int64(-1), uint32(math.MaxUint32), int64(0), uint32(0))
	f.Add(int64(math.MinInt64), uint32(0), int64(math.MaxInt64), uint32(math.MaxUint32))
	f.Add(int64(1<<40), uint32(7), int64(1<<40), uint32(6))
	f.Fuzz(func(t *testing.T, w1 int64, l1 uint32, w2 int64, l2 uint32) {
		a, b := Timestamp{w1, l1}, Timestamp{w2, l2}
		ea, eb := a.AppendBinary(nil), b.AppendBinary(nil)
		if got, want := bytes.Compare(ea, eb), a.Compare(b); got != want {
			t.Fatalf("bytes.Compare(%x, %x) = %d, Compare(%v, %v) = %d", ea, eb, got, a, b, want)
		}
		if d, err := DecodeTimestamp(ea); err != nil || d != a {
			t.Fatalf("DecodeTimestamp(%x) = %v, %v; want %v", ea, d, err, a)
		}
		if p, err := Parse(a.String()); err != nil || p != a {
			t.Fatalf("Parse(%q) = %v, %v; want %v", a.String(), p, err, a)
		}
	})
}
