// Package httpquery carries queries over HTTP, for the node's API and its
// web view alike: a query.Filter as URL query parameters, and a query of
// the local replica answered in the form of a cluster query's.
//
//	f, err := httpquery.Parse(r.URL.Query())
//	res, err := httpquery.Local(ctx, node, f)
package httpquery
