package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// clientFlags are the flags every command that talks to a node's API has.
type clientFlags struct {
	api       string
	tokenFile string
	certFile  string
	json      bool
	timeout   time.Duration
}

func (f *clientFlags) register(cmd *cobra.Command) {
	f.registerAPI(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON, for scripts")
}

// registerAPI registers the flags that reach the node, for a command that
// prints no output of its own.
func (f *clientFlags) registerAPI(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.api, "api", "", "the node's API: a unix socket path, a loopback host:port, or https://host:port of a node with --api-remote (default: $"+apiEnv+", else the socket of a node with the default data dir)")
	cmd.Flags().StringVar(&f.tokenFile, "api-token-file", "", "on TCP, send the token in this `file`, the node's "+apiTokenName+" (default: $"+tokenEnv+", else the default data dir's)")
	cmd.Flags().StringVar(&f.certFile, "api-cert", "", "with https://, trust only the node whose certificate is in this `file`, a copy of its "+apiCertName+" (default: $"+certEnv+", else the default data dir's)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 30*time.Second, "give up on the node after this long")
}

// apiClient calls a node's local API.
type apiClient struct {
	addr      apiAddr
	http      *http.Client
	timeout   time.Duration // of each call but streams
	token     string        // in hex; sent on TCP only
	tokenFrom string        // where the token came from, for a refusal
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
	transport := &http.Transport{
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return addr.dial(ctx) },
		DisableKeepAlives: true, // one call per command
	}
	c := &apiClient{addr: addr, timeout: f.timeout, http: &http.Client{Transport: transport}}
	if addr.network != "tcp" {
		return c, nil
	}
	// The token must not cross a network in the clear.
	if !addr.tls && !loopbackHost(addr.address) {
		return nil, usagef("the API at %s is not on loopback: a node's remote API serves TLS, reach it as https://%s", addr, addr.address)
	}
	token, from, err := f.token()
	if err != nil {
		return nil, err
	}
	c.token, c.tokenFrom = hex.EncodeToString(token), from
	if addr.tls {
		pinned, from, err := f.pinnedCert()
		if err != nil {
			return nil, err
		}
		transport.TLSClientConfig = pinnedTLS(pinned, from)
	}
	return c, nil
}

// token finds the token of a TCP API: in --api-token-file, else in
// $SCOPEMESH_API_TOKEN, else in the api.token of the default directories.
// It returns where it found it.
func (f *clientFlags) token() ([]byte, string, error) {
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, "", fmt.Errorf("--api-token-file: %w", err)
		}
		token, err := parseToken(string(b))
		if err != nil {
			return nil, "", fmt.Errorf("--api-token-file %s: %w", f.tokenFile, err)
		}
		return token, f.tokenFile, nil
	}
	if s := os.Getenv(tokenEnv); s != "" {
		token, err := parseToken(s)
		if err != nil {
			return nil, "", fmt.Errorf("$%s: %w", tokenEnv, err)
		}
		return token, "$" + tokenEnv, nil
	}
	var looked []string
	for _, dir := range defaultAPIDirs() {
		path := filepath.Join(dir, apiTokenName)
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			looked = append(looked, path)
			continue
		}
		if err != nil {
			return nil, "", err
		}
		token, err := parseToken(string(b))
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", path, err)
		}
		return token, path, nil
	}
	return nil, "", fmt.Errorf("%w: a TCP API needs the node's %s; pass --api-token-file with (a copy of) it, or set $%s to its contents (looked in %s)",
		ErrNoAPIToken, apiTokenName, tokenEnv, strings.Join(looked, " and "))
}

// pinnedCert finds the certificate to pin for a remote API: in --api-cert,
// else in $SCOPEMESH_API_CERT, else the api.crt of the default
// directories. It returns where it found it.
func (f *clientFlags) pinnedCert() ([]byte, string, error) {
	path := f.certFile
	if path == "" {
		path = os.Getenv(certEnv)
	}
	if path != "" {
		der, err := readPinnedCert(path)
		return der, path, err
	}
	var looked []string
	for _, dir := range defaultAPIDirs() {
		path := filepath.Join(dir, apiCertName)
		der, err := readPinnedCert(path)
		if errors.Is(err, fs.ErrNotExist) {
			looked = append(looked, path)
			continue
		}
		return der, path, err
	}
	return nil, "", fmt.Errorf("%w: copy the node's %s here and pass --api-cert with it, or set $%s to its path (looked in %s)",
		ErrNoAPICert, apiCertName, certEnv, strings.Join(looked, " and "))
}

// url returns the URL of path with the query q. A unix socket has no host
// name; the Host header then says "scopemesh".
func (c *apiClient) url(path string, q url.Values) string {
	scheme, host := "http", "scopemesh"
	if c.addr.network == "tcp" {
		host = c.addr.address
	}
	if c.addr.tls {
		scheme = "https"
	}
	u := url.URL{Scheme: scheme, Host: host, Path: path}
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
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.explain(err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		err := readAPIError(resp)
		if resp.StatusCode == http.StatusUnauthorized && c.tokenFrom != "" {
			err = fmt.Errorf("%w (sent the token from %s)", err, c.tokenFrom)
		}
		return nil, err
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
