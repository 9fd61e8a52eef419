package events

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// eventOfWireLen returns a valid event whose wire form is exactly n bytes.
func eventOfWireLen(t *testing.T, n int) Event {
	t.Helper()
	e := minimalEvent()
	base := minEventLen
	// The payload field costs its key, a head and the bytes; grow the
	// payload until the total is n.
	for p := 1; ; p++ {
		e.Payload = make([]byte, p)
		l := 1 + headLen(uint64(p)) + p
		if base+l == n {
			return e
		}
		if base+l > n {
			t.Fatalf("cannot build an event of exactly %d bytes", n)
		}
	}
}

func TestLimits(t *testing.T) {
	type check struct {
		name   string
		limits Limits
		at     Event // exactly at the limit: accepted
		over   Event // one over: rejected
		field  string
		want   error
	}
	withKind := func(k string) Event { e := minimalEvent(); e.Kind = k; return e }
	withNode := func(n string) Event { e := minimalEvent(); e.Node = n; return e }
	withAttrs := func(n int) Event {
		e := minimalEvent()
		e.Attrs = map[string]string{}
		for i := range n {
			e.Attrs[strings.Repeat("k", i+1)] = "v"
		}
		return e
	}
	withAttr := func(k, v string) Event { e := minimalEvent(); e.Attrs = map[string]string{k: v}; return e }

	checks := []check{
		{"default node", Limits{}, withNode(strings.Repeat("n", 128)), withNode(strings.Repeat("n", 129)), "Node", ErrTooLarge},
		{"raised node", Limits{MaxNodeBytes: 1000}, withNode(strings.Repeat("n", 1000)), withNode(strings.Repeat("n", 1001)), "Node", ErrTooLarge},
		{"default kind", Limits{}, withKind(strings.Repeat("k", 256)), withKind(strings.Repeat("k", 257)), "Kind", ErrTooLarge},
		{"raised kind", Limits{MaxKindBytes: 1000}, withKind(strings.Repeat("k", 1000)), withKind(strings.Repeat("k", 1001)), "Kind", ErrTooLarge},
		{"default attrs", Limits{}, withAttrs(64), withAttrs(65), "Attrs", ErrTooLarge},
		{"lowered attrs", Limits{MaxAttrs: 2}, withAttrs(2), withAttrs(3), "Attrs", ErrTooLarge},
		{"default key", Limits{}, withAttr(strings.Repeat("k", 128), ""), withAttr(strings.Repeat("k", 129), ""), "Attrs key", ErrTooLarge},
		{"default value", Limits{}, withAttr("k", strings.Repeat("v", 4096)), withAttr("k", strings.Repeat("v", 4097)), `Attrs["k"]`, ErrTooLarge},
		{"raised value", Limits{MaxAttrValueBytes: 10000}, withAttr("k", strings.Repeat("v", 10000)), withAttr("k", strings.Repeat("v", 10001)), `Attrs["k"]`, ErrTooLarge},
		{"default event", Limits{}, eventOfWireLen(t, 64<<10), eventOfWireLen(t, 64<<10+1), "event", ErrTooLarge},
		{"lowered event", Limits{MaxEventBytes: 100}, eventOfWireLen(t, 100), eventOfWireLen(t, 101), "event", ErrTooLarge},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			// Seal, Verify and Validate apply limits to events in memory;
			// Unmarshal and DecodeBatch to bytes from elsewhere, which a
			// sender with larger limits produced.
			s, err := c.limits.Seal(c.at)
			if err != nil {
				t.Fatalf("at the limit: Seal: %v", err)
			}
			b, err := c.limits.Marshal(s)
			if err != nil {
				t.Fatalf("at the limit: Marshal: %v", err)
			}
			if _, err := c.limits.Unmarshal(b); err != nil {
				t.Fatalf("at the limit: Unmarshal: %v", err)
			}
			if _, err := c.limits.DecodeBatch(mustEncodeBatch(t, c.limits, s)); err != nil {
				t.Fatalf("at the limit: DecodeBatch: %v", err)
			}

			wantErr := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.field) {
					t.Errorf("one over: %s = %v, want %v naming %s", what, err, c.want, c.field)
				}
			}
			_, err = c.limits.Seal(c.over)
			wantErr("Seal", err)
			wantErr("Validate", c.limits.Validate(c.over))

			big := Limits{MaxEventBytes: 1 << 20, MaxNodeBytes: 1 << 20, MaxKindBytes: 1 << 20, MaxAttrs: 1 << 20, MaxAttrKeyBytes: 1 << 20, MaxAttrValueBytes: 1 << 20}
			over := mustSealWith(t, big, c.over)
			wantErr("Verify", c.limits.Verify(over))
			_, err = c.limits.Marshal(over)
			wantErr("Marshal", err)
			ob, err := big.Marshal(over)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.limits.Unmarshal(ob)
			wantErr("Unmarshal", err)
			_, err = c.limits.DecodeBatch(mustEncodeBatch(t, big, over))
			wantErr("DecodeBatch", err)
		})
	}
}

func mustEncodeBatch(t testing.TB, l Limits, evs ...Event) []byte {
	t.Helper()
	b, err := l.EncodeBatch(evs)
	if err != nil {
		t.Fatalf("EncodeBatch: %v", err)
	}
	return b
}

func TestValidateRequiredAndUTF8(t *testing.T) {
	cases := map[string]struct {
		e     Event
		field string
	}{
		"empty node":       {Event{Kind: "k"}, "Node"},
		"empty kind":       {Event{Node: "n"}, "Kind"},
		"invalid node":     {Event{Node: "\xff", Kind: "k"}, "Node"},
		"invalid kind":     {Event{Node: "n", Kind: "a\xc3"}, "Kind"},
		"invalid attr key": {Event{Node: "n", Kind: "k", Attrs: map[string]string{"\xed\xa0\x80": "v"}}, "Attrs key"},
		"invalid attr val": {Event{Node: "n", Kind: "k", Attrs: map[string]string{"k": "\x80"}}, `Attrs["k"]`},
	}
	for name, c := range cases {
		_, err := Seal(c.e)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: Seal = %v, want ErrInvalid naming %s", name, err, c.field)
		}
	}
}

func TestNegativeLimits(t *testing.T) {
	l := Limits{MaxAttrs: -1, MaxBatchBytes: -2}
	_, err := l.Seal(typicalEvent())
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "MaxAttrs") || !strings.Contains(err.Error(), "MaxBatchBytes") {
		t.Fatalf("Seal with negative limits = %v, want ErrInvalid naming both", err)
	}
	if _, err := l.DecodeBatch([]byte{1, 0, 0, 0}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("DecodeBatch with negative limits = %v", err)
	}
}

func TestZeroLimitsMeanDefaults(t *testing.T) {
	z, err := Limits{}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if z != DefaultLimits {
		t.Fatalf("resolved zero limits %+v, DefaultLimits %+v", z, DefaultLimits)
	}
}

// TestResolveFillsEachField leaves one field of otherwise set limits zero,
// then negative, for every field, and checks that resolve gives it its
// default, then refuses it: the shortcut for limits all set must not pass
// over a field.
func TestResolveFillsEachField(t *testing.T) {
	n := reflect.TypeFor[Limits]().NumField()
	for i := range n {
		var l Limits
		v := reflect.ValueOf(&l).Elem()
		for j := range n {
			v.Field(j).SetInt(1)
		}
		v.Field(i).SetInt(0)
		name := v.Type().Field(i).Name
		r, err := l.resolve()
		if err != nil {
			t.Fatalf("resolve with %s zero: %v", name, err)
		}
		if got, want := reflect.ValueOf(r).Field(i).Int(), reflect.ValueOf(builtinLimits).Field(i).Int(); got != want {
			t.Fatalf("resolve gave zero %s %d, want its default %d", name, got, want)
		}
		v.Field(i).SetInt(-1)
		if _, err := l.resolve(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), name) {
			t.Fatalf("resolve with %s negative = %v, want ErrInvalid naming it", name, err)
		}
	}
}
