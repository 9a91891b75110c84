package config

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// TLS says how a server certificate is verified. Verification against the
// system roots is the default; CAFile replaces the roots, Fingerprints pins
// leaf certificates instead of verifying a chain, and InsecureSkipVerify
// turns verification off only when asked for by name.
type TLS struct {
	// CAFile is a PEM bundle of the CAs that sign the servers' certificates.
	CAFile string `yaml:"ca_file"`
	// Fingerprints are SHA-256 fingerprints of accepted leaf certificates, in
	// hex with or without colons; any one of them matching is enough.
	Fingerprints []string `yaml:"fingerprints_sha256"`
	// ServerName overrides the name checked in the certificate.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any certificate.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

func (t TLS) isZero() bool {
	return t.CAFile == "" && len(t.Fingerprints) == 0 && t.ServerName == "" && !t.InsecureSkipVerify
}

func (t TLS) validate() error {
	n := 0
	if t.CAFile != "" {
		n++
	}
	if len(t.Fingerprints) > 0 {
		n++
	}
	if t.InsecureSkipVerify {
		n++
	}
	if n > 1 {
		return errors.New("set at most one of ca_file, fingerprints_sha256 and insecure_skip_verify")
	}
	for _, f := range t.Fingerprints {
		if _, err := parseFingerprint(f); err != nil {
			return err
		}
	}
	if t.CAFile != "" {
		if _, err := t.ClientConfig(); err != nil {
			return err
		}
	}
	return nil
}

// ClientConfig builds the crypto/tls client configuration.
func (t TLS) ClientConfig() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	switch {
	case t.InsecureSkipVerify:
		c.InsecureSkipVerify = true
	case len(t.Fingerprints) > 0:
		var pins [][]byte
		for _, f := range t.Fingerprints {
			p, err := parseFingerprint(f)
			if err != nil {
				return nil, err
			}
			pins = append(pins, p)
		}
		// The chain is not verified: the pin replaces it.
		c.InsecureSkipVerify = true
		c.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("server sent no certificate")
			}
			sum := sha256.Sum256(raw[0])
			for _, p := range pins {
				if bytes.Equal(sum[:], p) {
					return nil
				}
			}
			return fmt.Errorf("certificate fingerprint %s is not pinned", hex.EncodeToString(sum[:]))
		}
	case t.CAFile != "":
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", t.CAFile)
		}
		c.RootCAs = pool
	}
	return c, nil
}

func parseFingerprint(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("fingerprint %q is not a SHA-256 hex digest", s)
	}
	return b, nil
}
