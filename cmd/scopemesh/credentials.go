package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The credentials of an API on TCP, where the socket's file mode no longer
// says who may call: a token every request carries, and for a remote API a
// self-signed TLS certificate that clients pin. The node makes them at its
// first start, in its data dir (an in-memory node: next to its runtime
// socket), and reuses them afterwards, so clients keep working across
// restarts.

// The credentials' file names in the node's directory.
const (
	apiTokenName = "api.token" // the token in hex, mode 0600
	apiCertName  = "api.crt"   // the certificate, PEM
	apiKeyName   = "api.key"   // its private key, PEM, mode 0600
)

// The environment variables a client command reads credentials from.
const (
	tokenEnv = "SCOPEMESH_API_TOKEN" // the token itself
	certEnv  = "SCOPEMESH_API_CERT"  // a file holding the certificate to pin
)

// tokenLen is the token's length in bytes: a guess has no chance.
const tokenLen = 32

// certValidity is how long a made certificate is valid. Clients pin it and
// ignore its dates; the dates matter only to other clients, such as curl
// with --cacert, which should not see it expire under a long-lived node.
const certValidity = 10 * 365 * 24 * time.Hour

// Errors of the API's credentials. Commands print them after
// "scopemesh: ".
var (
	// ErrNoAPIToken reports a client command with no token for a TCP API.
	ErrNoAPIToken = errors.New("no API token")

	// ErrMalformedAPIToken reports a token that is not 32 bytes in hex.
	ErrMalformedAPIToken = errors.New("malformed API token")

	// ErrNoAPICert reports a client command with no certificate to pin for
	// a remote API.
	ErrNoAPICert = errors.New("no API certificate to pin")

	// ErrCertMismatch reports a node whose TLS certificate is not the one
	// the client pinned: another node, or someone in between.
	ErrCertMismatch = errors.New("the node's certificate is not the pinned one")

	// ErrSecretExposed reports a token or key file that users other than
	// its owner may read.
	ErrSecretExposed = errors.New("a secret of the API is readable by others")
)

// apiCredentials are the credentials of a TCP API, as the node serves
// them.
type apiCredentials struct {
	token     []byte      // tokenLen bytes
	tokenFile string      // where clients find it
	tls       *tls.Config // nil: plain HTTP, on loopback
	certFile  string      // the certificate clients pin; empty without TLS
	certSHA   string      // its fingerprint, for clients to check their copy
}

// loadCredentials makes or reads, in dir, the credentials of a TCP API at
// addr: the token, and for TLS the certificate.
func loadCredentials(dir string, addr apiAddr) (apiCredentials, error) {
	token, tokenFile, err := loadToken(dir)
	if err != nil {
		return apiCredentials{}, err
	}
	c := apiCredentials{token: token, tokenFile: tokenFile}
	if !addr.tls {
		return c, nil
	}
	host, _, _ := net.SplitHostPort(addr.address) // checked by parseAPIAddr
	cert, err := loadCertificate(dir, host)
	if err != nil {
		return apiCredentials{}, err
	}
	c.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	c.certFile = filepath.Join(dir, apiCertName)
	c.certSHA = fingerprint(cert.Certificate[0])
	return c, nil
}

// loadToken returns the token in dir's api.token and that file's path,
// making the file with a random token if there is none.
func loadToken(dir string) ([]byte, string, error) {
	path := filepath.Join(dir, apiTokenName)
	token := make([]byte, tokenLen)
	rand.Read(token) // never fails: it crashes the program instead
	err := createFile(path, []byte(hex.EncodeToString(token)+"\n"), 0o600)
	if errors.Is(err, fs.ErrExist) {
		token, err = readToken(path)
	}
	if err != nil {
		return nil, "", fmt.Errorf("the API token: %w", err)
	}
	return token, path, nil
}

// readToken reads a token file of the node's, which must be private.
func readToken(path string) ([]byte, error) {
	b, err := readSecret(path)
	if err != nil {
		return nil, err
	}
	token, err := parseToken(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return token, nil
}

// parseToken reads a token in hex, as api.token and $SCOPEMESH_API_TOKEN
// hold it.
func parseToken(s string) ([]byte, error) {
	token, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(token) != tokenLen {
		return nil, fmt.Errorf("%w: want %d hex digits, as the node's %s holds", ErrMalformedAPIToken, 2*tokenLen, apiTokenName)
	}
	return token, nil
}

// readSecret reads a file that only its owner may read.
func readSecret(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if mode := fi.Mode().Perm(); mode&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %v: chmod 600 it, or delete it and restart the node for a new one", ErrSecretExposed, path, mode)
	}
	return os.ReadFile(path)
}

// loadCertificate returns the certificate in dir's api.crt and api.key,
// making a self-signed one for host if there is none. A certificate made
// for another host is kept: clients pin it whatever names it holds.
func loadCertificate(dir, host string) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, apiCertName), filepath.Join(dir, apiKeyName)
	if _, err := os.Stat(certPath); err == nil {
		key, err := readSecret(keyPath)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("the API's TLS key: %w", err)
		}
		certPEM, err := os.ReadFile(certPath)
		if err != nil {
			return tls.Certificate{}, err
		}
		cert, err := tls.X509KeyPair(certPEM, key)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("%s and %s: %w; delete both and restart the node for a new pair, which clients must pin anew", certPath, keyPath, err)
		}
		return cert, nil
	}
	certPEM, keyPEM, err := newCertificate(host, time.Now())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("making the API's TLS certificate: %w", err)
	}
	// The key first: a certificate on disk always has its key.
	if err := createFile(keyPath, keyPEM, 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			err = fmt.Errorf("%s exists without %s: delete it and restart the node for a new pair", keyPath, certPath)
		}
		return tls.Certificate{}, err
	}
	if err := createFile(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// newCertificate makes a self-signed ECDSA P-256 certificate for the API
// on host, valid from now for certValidity, and returns it and its key in
// PEM. It names host and localhost, or this machine's name for an
// unspecified host such as 0.0.0.0.
func newCertificate(host string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "scopemesh node API"},
		// An hour back, for clients whose clocks are behind.
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	switch {
	case ip != nil && ip.IsUnspecified():
		if name, err := os.Hostname(); err == nil && name != "localhost" {
			tmpl.DNSNames = append(tmpl.DNSNames, name)
		}
	case ip != nil:
		tmpl.IPAddresses = []net.IP{ip}
	case host != "" && host != "localhost":
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// fingerprint is the SHA-256 of a certificate in the form of `openssl x509
// -noout -fingerprint -sha256`, for a user to compare the node's with the
// copy a client pins.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	hexSum := strings.ToUpper(hex.EncodeToString(sum[:]))
	pairs := make([]string, len(sum))
	for i := range pairs {
		pairs[i] = hexSum[2*i : 2*i+2]
	}
	return strings.Join(pairs, ":")
}

// createFile makes path holding data with mode perm, whole or not at all:
// another process never reads it half written. It fails with fs.ErrExist
// if path exists.
func createFile(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if err := errors.Join(err, tmp.Close()); err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}

// readPinnedCert reads the certificate a client pins from a PEM file.
func readPinnedCert(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate: give the node's %s", path, apiCertName)
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return block.Bytes, nil
}

// pinnedTLS is the TLS configuration of a client that trusts the server
// whose leaf certificate is exactly pinned, from the file from: no CA,
// no host name, no dates, since the node's certificate is self-signed and
// its address may be any name or IP.
func pinnedTLS(pinned []byte, from string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// VerifyConnection does the verification, against the pin alone.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 && bytes.Equal(cs.PeerCertificates[0].Raw, pinned) {
				return nil
			}
			got := "none"
			if len(cs.PeerCertificates) > 0 {
				got = fingerprint(cs.PeerCertificates[0].Raw)
			}
			return fmt.Errorf("%w: it has SHA-256 %s, %s has %s; copy the node's %s again, or check this is the node you meant",
				ErrCertMismatch, got, from, fingerprint(pinned), apiCertName)
		},
	}
}
