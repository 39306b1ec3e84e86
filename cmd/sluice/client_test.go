package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
)

// parseConnFlags parses args as the connection flags of a command.
func parseConnFlags(t *testing.T, args ...string) *connFlags {
	t.Helper()
	var f connFlags
	cmd := &cobra.Command{Use: "x"}
	f.register(cmd, nil)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return &f
}

// writeCertificate writes a self-signed certificate and its key as PEM
// files and returns their paths.
func writeCertificate(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sluice test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// firstMessage is what mech sends first when it authenticates.
func firstMessage(t *testing.T, mech sasl.Mechanism) string {
	t.Helper()
	_, msg, err := mech.Authenticate(context.Background(), "broker:9092")
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	return string(msg)
}

func TestConnFlagsDefaultToThePlainEmbeddedBroker(t *testing.T) {
	f := parseConnFlags(t)
	if strings.Join(f.brokers, ",") != "127.0.0.1:9092" {
		t.Errorf("brokers %q, want the embedded broker's address", f.brokers)
	}
	opts, err := f.kgoOpts()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if c, _ := cl.OptValue(kgo.DialTLSConfig).(*tls.Config); c != nil {
		t.Errorf("TLS set without --tls: %+v", c)
	}
	if v, _ := cl.OptValue(kgo.SASL).([]sasl.Mechanism); len(v) != 0 {
		t.Errorf("SASL set without --sasl-mechanism: %v", v)
	}
}

func TestConnFlagsBuildSASLMechanisms(t *testing.T) {
	f := parseConnFlags(t, "--sasl-mechanism", "plain", "--sasl-user", "alice", "--sasl-password", "s3cret")
	mech, err := f.saslMechanism()
	if err != nil {
		t.Fatal(err)
	}
	if mech.Name() != "PLAIN" || firstMessage(t, mech) != "\x00alice\x00s3cret" {
		t.Errorf("plain: %s sends %q", mech.Name(), firstMessage(t, mech))
	}

	t.Setenv(passwordEnv, "from-env")
	for flag, name := range map[string]string{"scram-sha-256": "SCRAM-SHA-256", "SCRAM-SHA-512": "SCRAM-SHA-512"} {
		f := parseConnFlags(t, "--sasl-mechanism", flag, "--sasl-user", "bob", "--brokers", "a:9093,b:9093")
		mech, err := f.saslMechanism()
		if err != nil {
			t.Fatalf("%s: %v", flag, err)
		}
		if mech.Name() != name || !strings.HasPrefix(firstMessage(t, mech), "n,,n=bob,r=") {
			t.Errorf("%s: %s sends %q", flag, mech.Name(), firstMessage(t, mech))
		}
		opts, err := f.kgoOpts()
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		mechs, _ := cl.OptValue(kgo.SASL).([]sasl.Mechanism)
		seeds, _ := cl.OptValue(kgo.SeedBrokers).([]string)
		cl.Close()
		if len(mechs) != 1 || mechs[0].Name() != name {
			t.Errorf("%s: client SASL %v", flag, mechs)
		}
		if strings.Join(seeds, ",") != "a:9093,b:9093" {
			t.Errorf("client seeds %q", seeds)
		}
	}
}

func TestConnFlagsRejectIncompleteSASL(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sasl-user", "alice", "--sasl-password", "p"}, "need --sasl-mechanism"},
		{[]string{"--sasl-mechanism", "plain", "--sasl-password", "p"}, "needs --sasl-user"},
		{[]string{"--sasl-mechanism", "plain", "--sasl-user", "alice"}, "needs a password"},
		{[]string{"--sasl-mechanism", "gssapi", "--sasl-user", "alice", "--sasl-password", "p"}, "want plain, scram-sha-256 or scram-sha-512"},
	} {
		t.Setenv(passwordEnv, "")
		f := parseConnFlags(t, tc.args...)
		if _, err := f.kgoOpts(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}

func TestConnFlagsBuildTLSConfig(t *testing.T) {
	cert, key := writeCertificate(t)

	cfg, err := parseConnFlags(t, "--tls").tlsConfig()
	if err != nil || cfg == nil || cfg.RootCAs != nil || len(cfg.Certificates) != 0 {
		t.Errorf("--tls: %+v, %v; want TLS with the system's CAs and no client certificate", cfg, err)
	}
	cfg, err = parseConnFlags(t, "--tls-ca", cert).tlsConfig()
	if err != nil || cfg == nil || cfg.RootCAs == nil {
		t.Errorf("--tls-ca: %+v, %v; want TLS trusting the CA", cfg, err)
	}
	cfg, err = parseConnFlags(t, "--tls-cert", cert, "--tls-key", key).tlsConfig()
	if err != nil || cfg == nil || len(cfg.Certificates) != 1 {
		t.Errorf("--tls-cert, --tls-key: %+v, %v; want TLS with a client certificate", cfg, err)
	}

	f := parseConnFlags(t, "--tls-ca", cert)
	opts, err := f.kgoOpts()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if c, _ := cl.OptValue(kgo.DialTLSConfig).(*tls.Config); c == nil || c.RootCAs == nil {
		t.Error("client has no TLS config")
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", cert}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-ca", key}, "no PEM certificate"},
		{[]string{"--tls-ca", filepath.Join(t.TempDir(), "missing.pem")}, "--tls-ca"},
		{[]string{"--tls-cert", key, "--tls-key", cert}, "--tls-cert/--tls-key"},
	} {
		if _, err := parseConnFlags(t, tc.args...).kgoOpts(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}

// An empty address in --brokers (a stray comma) and a negative --timeout
// are errors that name the flag, not a dial of ":9092" or no timeout.
func TestConnFlagsRejectEmptyBrokersAndNegativeTimeouts(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--brokers", "kafka-1:9092,"}, `--brokers "kafka-1:9092,": an empty address`},
		{[]string{"--brokers", ","}, `--brokers ",": an empty address`},
		{[]string{"--brokers", " "}, `an empty address`},
		{[]string{"--timeout", "-5s"}, "--timeout -5s: want a positive duration, or 0 for the Kafka client's own limits"},
	} {
		f := parseConnFlags(t, tc.args...)
		if _, err := f.kgoOpts(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
	if _, err := parseConnFlags(t, "--timeout", "0").kgoOpts(); err != nil {
		t.Errorf("--timeout 0: %v", err)
	}
}
