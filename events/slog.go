package events

import (
	"context"
	"log/slog"
	"slices"
)

// traceIDKey is the key of the trace ID that NewSlogHandler adds to records.
const traceIDKey = "trace_id"

// NewSlogHandler returns a handler that passes records to h and adds the
// attribute trace_id, the hex TraceID, at the top level of every record
// whose context carries a trace, even inside groups opened by WithGroup, so
// that one query on trace_id finds every line of a trace.
func NewSlogHandler(h slog.Handler) slog.Handler { return &slogHandler{inner: h} }

// slogHandler keeps attributes and groups added after the first open group
// to itself, and applies them in Handle: were they passed on to the inner
// handler, it would put trace_id inside the group. Attributes added before
// any group go to the inner handler, which can then format them once.
type slogHandler struct {
	inner slog.Handler
	goas  []groupOrAttrs // since the first group, oldest first
}

// groupOrAttrs is one WithGroup (group set) or WithAttrs (attrs set) call.
type groupOrAttrs struct {
	group string
	attrs []slog.Attr
}

var _ slog.Handler = (*slogHandler)(nil)

func (h *slogHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	if len(h.goas) == 0 {
		return &slogHandler{inner: h.inner.WithAttrs(attrs)}
	}
	return h.with(groupOrAttrs{attrs: attrs})
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(groupOrAttrs{group: name})
}

func (h *slogHandler) with(g groupOrAttrs) *slogHandler {
	// Clip so that handlers derived from h never share a backing array.
	return &slogHandler{inner: h.inner, goas: append(slices.Clip(h.goas), g)}
}

func (h *slogHandler) Handle(ctx context.Context, r slog.Record) error {
	t, ok := TraceFromContext(ctx)
	if !ok && len(h.goas) == 0 {
		return h.inner.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	if ok {
		out.AddAttrs(slog.String(traceIDKey, t.String()))
	}
	if len(h.goas) == 0 {
		r.Attrs(func(a slog.Attr) bool { out.AddAttrs(a); return true })
		return h.inner.Handle(ctx, out)
	}
	// Nest the record's attributes in the open groups, innermost first.
	attrs := make([]slog.Attr, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a); return true })
	for _, g := range slices.Backward(h.goas) {
		switch {
		case g.group == "":
			attrs = append(slices.Clip(g.attrs), attrs...)
		case len(attrs) > 0:
			// A group with no attributes is left out, as slog's own
			// handlers do.
			attrs = []slog.Attr{{Key: g.group, Value: slog.GroupValue(attrs...)}}
		}
	}
	out.AddAttrs(attrs...)
	return h.inner.Handle(ctx, out)
}
