package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
	"github.com/scopemesh/scopemesh/query"
)

// filterFlags are the flags that select events, of query and tail.
type filterFlags struct {
	trace string
	nodes []string
	kinds []string
	attrs []string

	// query only: a live stream has no range, order or pages
	since, until string
	limit        int
	after        string
	desc         bool
}

func (f *filterFlags) register(cmd *cobra.Command, paged bool) {
	fs := cmd.Flags()
	fs.StringVar(&f.trace, "trace", "", "only events of this trace `ID` (32 hex digits)")
	fs.StringSliceVar(&f.nodes, "node", nil, "only events recorded on the node with this peer `ID` (repeat for any of several)")
	fs.StringSliceVar(&f.kinds, "kind", nil, "only events of this `kind` (repeat for any of several)")
	fs.StringArrayVar(&f.attrs, "attr", nil, "only events with this attribute, `key=value` (repeat: all must match)")
	if !paged {
		return
	}
	fs.StringVar(&f.since, "since", "", "only events at or after `TIME`: a duration ago (5m), RFC 3339, or an HLC timestamp (wall.logical)")
	fs.StringVar(&f.until, "until", "", "only events before `TIME`, in the forms --since takes")
	fs.IntVar(&f.limit, "limit", 0, fmt.Sprintf("at most `N` events (default %d, at most %d; with --cluster, at most %d a page)", query.DefaultLimit, query.MaxLimit, query.MaxRemoteLimit))
	fs.StringVar(&f.after, "after", "", "resume after this `cursor`, which a query with more events to list prints")
	fs.BoolVar(&f.desc, "desc", false, "newest first")
}

// filter returns the filter the flags describe; now anchors durations.
func (f *filterFlags) filter(now time.Time) (query.Filter, error) {
	var q query.Filter
	if f.trace != "" {
		id, err := events.ParseTraceID(f.trace)
		if err != nil {
			return q, usagef("--trace: %v", err)
		}
		q.Correlation = id
	}
	q.Nodes, q.Kinds = f.nodes, f.kinds
	attrs, err := parseAttrs(f.attrs)
	if err != nil {
		return q, usagef("--attr: %v", err)
	}
	q.Attrs = attrs
	if q.Since, err = parseTimeBound(f.since, now); err != nil {
		return q, usagef("--since: %v", err)
	}
	if q.Until, err = parseTimeBound(f.until, now); err != nil {
		return q, usagef("--until: %v", err)
	}
	q.Limit, q.Descending = f.limit, f.desc
	if f.after != "" {
		if q.After, err = scopemesh.ParseKey(f.after); err != nil {
			return q, usagef("--after: %v", err)
		}
	}
	if err := q.Validate(); err != nil {
		return q, &usageError{err}
	}
	return q, nil
}

// parseAttrs reads key=value pairs.
func parseAttrs(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	attrs := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
		attrs[k] = v
	}
	return attrs, nil
}

// parseTimeBound reads a time as a duration before now, an RFC 3339 time,
// or an HLC timestamp; empty means no bound.
func parseTimeBound(s string, now time.Time) (hlc.Timestamp, error) {
	if s == "" {
		return hlc.Timestamp{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return hlc.Timestamp{Wall: now.Add(-d).UnixNano()}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return hlc.Timestamp{Wall: t.UnixNano()}, nil
	}
	if ts, err := hlc.Parse(s); err == nil {
		return ts, nil
	}
	return hlc.Timestamp{}, fmt.Errorf("%q is neither a duration (5m), an RFC 3339 time nor an HLC timestamp (wall.logical)", s)
}
