package httpquery

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
	"github.com/scopemesh/scopemesh/query"
)

// Local answers f from the node's own replica, in the form of a
// cluster query's answer.
func Local(ctx context.Context, node *scopemesh.Node, f query.Filter) (query.Result, error) {
	evs, err := node.Query(ctx, f)
	if err != nil {
		return query.Result{}, err
	}
	res := query.Result{Events: evs, Complete: true}
	limit := f.Limit
	if limit == 0 {
		limit = query.DefaultLimit
	}
	if len(evs) == limit {
		res.Next = query.CursorOf(evs[len(evs)-1])
	}
	return res, nil
}

// Parse reads a filter from URL query parameters: trace, node, kind,
// attr (k=v), since and until (HLC timestamps, "wall.logical"), limit,
// after (a cursor) and desc; node, kind and attr repeat.
func Parse(q url.Values) (query.Filter, error) {
	var f query.Filter
	var errs []error
	if s := q.Get("trace"); s != "" {
		id, err := events.ParseTraceID(s)
		errs = append(errs, err)
		f.Correlation = id
	}
	f.Nodes = q["node"]
	f.Kinds = q["kind"]
	for _, kv := range q["attr"] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			errs = append(errs, fmt.Errorf("attr %q is not key=value", kv))
			continue
		}
		if f.Attrs == nil {
			f.Attrs = make(map[string]string)
		}
		f.Attrs[k] = v
	}
	for _, p := range []struct {
		name string
		dst  *hlc.Timestamp
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if s := q.Get(p.name); s != "" {
			ts, err := hlc.Parse(s)
			errs = append(errs, err)
			*p.dst = ts
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			err = fmt.Errorf("limit %q is not a number", s)
		}
		errs = append(errs, err)
		f.Limit = n
	}
	if s := q.Get("after"); s != "" {
		k, err := crdt.ParseKey(s)
		errs = append(errs, err)
		f.After = k
	}
	desc, err := Bool(q, "desc")
	errs = append(errs, err)
	f.Descending = desc
	if err := errors.Join(errs...); err != nil {
		return f, fmt.Errorf("%w: %w", query.ErrInvalidFilter, err)
	}
	return f, f.Validate()
}

// ResolveNodeNames replaces the members' names among f.Nodes with their
// peer IDs, as node knows them, so that filters name nodes either way.
func ResolveNodeNames(node *scopemesh.Node, f *query.Filter) error {
	if len(f.Nodes) == 0 {
		return nil
	}
	ids := map[string][]string{}
	st := node.Status()
	ids[st.Name] = append(ids[st.Name], st.ID)
	for _, p := range node.Peers() {
		if p.Name != "" {
			ids[p.Name] = append(ids[p.Name], p.ID)
		}
	}
	var out []string
	for _, n := range f.Nodes {
		if _, err := lpeer.Decode(n); err == nil {
			out = append(out, n)
			continue
		}
		if len(ids[n]) == 0 {
			return fmt.Errorf("%w: node %q is neither a peer ID nor a member's name", query.ErrInvalidFilter, n)
		}
		out = append(out, ids[n]...)
	}
	f.Nodes = out
	return f.Validate()
}

// Values is the inverse of Parse.
func Values(f query.Filter) url.Values {
	q := url.Values{}
	if !f.Correlation.IsZero() {
		q.Set("trace", f.Correlation.String())
	}
	for _, n := range f.Nodes {
		q.Add("node", n)
	}
	for _, k := range f.Kinds {
		q.Add("kind", k)
	}
	for k, v := range f.Attrs {
		q.Add("attr", k+"="+v)
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.String())
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.String())
	}
	if f.Limit != 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if !f.After.IsZero() {
		q.Set("after", f.After.String())
	}
	if f.Descending {
		q.Set("desc", "true")
	}
	return q
}

// Bool reads the boolean parameter name; absent is false.
func Bool(q url.Values, name string) (bool, error) {
	s := q.Get(name)
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%s %q is not true or false", name, s)
	}
	return b, nil
}
