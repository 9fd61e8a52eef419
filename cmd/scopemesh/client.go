package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// clientFlags are the flags every command that talks to a node's API has.
type clientFlags struct {
	api     string
	json    bool
	timeout time.Duration
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.api, "api", "", "the node's API: a unix socket path or host:port (default: $"+apiEnv+", else the socket of a node with the default data dir)")
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON, for scripts")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 30*time.Second, "give up on the node after this long")
}

// apiClient calls a node's local API.
type apiClient struct {
	addr    apiAddr
	http    *http.Client
	timeout time.Duration // of each call but streams
}

// client returns a client of the API f names.
func (f *clientFlags) client() (*apiClient, error) {
	var addr apiAddr
	if f.api != "" {
		a, err := parseAPIAddr(f.api)
		if err != nil {
			return nil, &usageError{fmt.Errorf("--api: %w", err)}
		}
		addr = a
	} else {
		candidates, err := clientAPIAddrs()
		if err != nil {
			return nil, err
		}
		addr = candidates[0]
		found := false
		for _, a := range candidates {
			if a.network != "unix" {
				addr, found = a, true
				break
			}
			if _, err := os.Stat(a.address); err == nil {
				addr, found = a, true
				break
			}
		}
		if !found {
			var where []string
			for _, a := range candidates {
				where = append(where, a.String())
			}
			return nil, fmt.Errorf("no node API at %s: start a node with `scopemesh node`, or point --api (or $%s) at a running node's API", strings.Join(where, " or "), apiEnv)
		}
	}
	return &apiClient{
		addr:    addr,
		timeout: f.timeout,
		http: &http.Client{Transport: &http.Transport{
			DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return addr.dial(ctx) },
			DisableKeepAlives: true, // one call per command
		}},
	}, nil
}

// url returns the URL of path with the query q. A unix socket has no host
// name; the Host header then says "scopemesh".
func (c *apiClient) url(path string, q url.Values) string {
	host := "scopemesh"
	if c.addr.network == "tcp" {
		host = c.addr.address
	}
	u := url.URL{Scheme: "http", Host: host, Path: path}
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// do sends a request and returns the response if it succeeded; the caller
// closes its body.
func (c *apiClient) do(ctx context.Context, method, path string, q url.Values, body any, accept string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", accept)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.explain(err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, readAPIError(resp)
	}
	return resp, nil
}

// explain turns a failure to reach the node into what to do about it.
func (c *apiClient) explain(err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("no node API at %s: start a node with `scopemesh node --api %s`, or point --api (or $%s) at a running node's API", c.addr, c.addr, apiEnv)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("not permitted to use the node API at %s: run as the node's user", c.addr)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the node at %s did not answer within %v (see --timeout)", c.addr, c.timeout)
	}
	return fmt.Errorf("calling the node at %s: %w", c.addr, err)
}

// call sends a request and decodes the JSON answer into out.
func (c *apiClient) call(ctx context.Context, method, path string, q url.Values, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.do(ctx, method, path, q, body, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return c.explain(fmt.Errorf("reading the answer: %w", err))
	}
	return nil
}

// stream opens the event stream for q; the caller reads lines of
// streamLine from the body and closes it.
func (c *apiClient) stream(ctx context.Context, q url.Values) (io.ReadCloser, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/events/stream", q, nil, "application/x-ndjson")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
