package events

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"testing"
	"testing/slogtest"
)

// logLine logs one record through NewSlogHandler over a JSON handler and
// returns it decoded, without time.
func logLine(t *testing.T, ctx context.Context, build func(*slog.Logger) *slog.Logger, args ...any) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	inner := slog.NewJSONHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	l := build(slog.New(NewSlogHandler(inner)))
	l.InfoContext(ctx, "msg", args...)
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("%s: %v", buf.Bytes(), err)
	}
	return m
}

func TestSlogHandler(t *testing.T) {
	tr := NewTraceID()
	traced := ContextWithTrace(context.Background(), tr)
	id := tr.String()
	cases := []struct {
		name  string
		ctx   context.Context
		build func(*slog.Logger) *slog.Logger
		args  []any
		want  string
	}{
		{"plain", traced, func(l *slog.Logger) *slog.Logger { return l }, []any{"a", 1},
			`{"level":"INFO","msg":"msg","trace_id":"` + id + `","a":1}`},
		{"no trace", context.Background(), func(l *slog.Logger) *slog.Logger { return l.WithGroup("g").With("b", 2) }, []any{"a", 1},
			`{"level":"INFO","msg":"msg","g":{"b":2,"a":1}}`},
		{"with attrs", traced, func(l *slog.Logger) *slog.Logger { return l.With("b", 2) }, []any{"a", 1},
			`{"level":"INFO","msg":"msg","b":2,"trace_id":"` + id + `","a":1}`},
		{"group", traced, func(l *slog.Logger) *slog.Logger { return l.WithGroup("g") }, []any{"a", 1},
			`{"level":"INFO","msg":"msg","trace_id":"` + id + `","g":{"a":1}}`},
		{"attrs, group, attrs, group", traced,
			func(l *slog.Logger) *slog.Logger {
				return l.With("top", 0).WithGroup("g").With("b", 2).WithGroup("h").With("c", 3)
			},
			[]any{"a", 1},
			`{"level":"INFO","msg":"msg","top":0,"trace_id":"` + id + `","g":{"b":2,"h":{"c":3,"a":1}}}`},
		{"empty group dropped", traced, func(l *slog.Logger) *slog.Logger { return l.With("b", 2).WithGroup("g") }, nil,
			`{"level":"INFO","msg":"msg","b":2,"trace_id":"` + id + `"}`},
		{"empty inner group dropped", traced, func(l *slog.Logger) *slog.Logger { return l.WithGroup("g").With("b", 2).WithGroup("h") }, nil,
			`{"level":"INFO","msg":"msg","trace_id":"` + id + `","g":{"b":2}}`},
		{"empty group name ignored", traced, func(l *slog.Logger) *slog.Logger { return l.WithGroup("") }, []any{"a", 1},
			`{"level":"INFO","msg":"msg","trace_id":"` + id + `","a":1}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := logLine(t, c.ctx, c.build, c.args...)
			var want map[string]any
			if err := json.Unmarshal([]byte(c.want), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				t.Fatalf("got  %s\nwant %s", g, c.want)
			}
		})
	}
}

func TestSlogHandlerSiblings(t *testing.T) {
	// Two loggers derived from one must not see each other's attributes.
	var buf bytes.Buffer
	base := slog.New(NewSlogHandler(slog.NewJSONHandler(&buf, nil))).WithGroup("g").With("a", 1)
	l1 := base.With("b", 2)
	l2 := base.With("c", 3)
	l1.Info("1")
	l2.Info("2")
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	var m1, m2 map[string]any
	json.Unmarshal(lines[0], &m1)
	json.Unmarshal(lines[1], &m2)
	g1, g2 := m1["g"].(map[string]any), m2["g"].(map[string]any)
	if g1["c"] != nil || g2["b"] != nil || g1["b"] == nil || g2["c"] == nil {
		t.Fatalf("siblings mixed: %v, %v", g1, g2)
	}
}

// TestSlogHandlerConformance runs the standard library's handler test suite
// on the wrapper; without a trace in the context it must behave as the
// handler it wraps.
func TestSlogHandlerConformance(t *testing.T) {
	var buf bytes.Buffer
	h := NewSlogHandler(slog.NewJSONHandler(&buf, nil))
	results := func() []map[string]any {
		var ms []map[string]any
		for line := range bytes.SplitSeq(buf.Bytes(), []byte{'\n'}) {
			if len(line) == 0 {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatal(err)
			}
			ms = append(ms, m)
		}
		return ms
	}
	if err := slogtest.TestHandler(h, results); err != nil {
		t.Fatal(err)
	}
}
