package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/internal/kafka"
)

// passwordEnv is the environment variable the SASL password is read from
// when --sasl-password is not given, so that it stays out of shell history
// and process listings.
const passwordEnv = "SLUICE_SASL_PASSWORD"

// connFlags are the flags of commands that connect to Kafka as a client.
type connFlags struct {
	brokers  []string
	timeout  time.Duration
	tls      bool
	tlsCA    string
	tlsCert  string
	tlsKey   string
	saslMech string
	saslUser string
	saslPass string
	global   *globalFlags
}

func (f *connFlags) register(cmd *cobra.Command, g *globalFlags) {
	f.global = g
	fs := cmd.PersistentFlags()
	fs.StringSliceVar(&f.brokers, "brokers", sluice.DefaultBrokers, "Kafka brokers to connect to, host:port, comma-separated")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to wait for the brokers to answer a request (0: only the Kafka client's own limits)")
	fs.BoolVar(&f.tls, "tls", false, "connect with TLS (implied by --tls-ca and --tls-cert)")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "PEM file of the CA certificates to trust instead of the system's")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM file of the client certificate to present (needs --tls-key)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM file of the client certificate's private key")
	fs.StringVar(&f.saslMech, "sasl-mechanism", "", "SASL mechanism: plain, scram-sha-256 or scram-sha-512")
	fs.StringVar(&f.saslUser, "sasl-user", "", "SASL user name")
	fs.StringVar(&f.saslPass, "sasl-password", "", "SASL password (default: $"+passwordEnv+")")
}

// tlsConfig returns the TLS configuration the flags ask for, or nil for a
// plain connection.
func (f *connFlags) tlsConfig() (*tls.Config, error) {
	if !f.tls && f.tlsCA == "" && f.tlsCert == "" && f.tlsKey == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.tlsCA != "" {
		pem, err := os.ReadFile(f.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca %s: no PEM certificate in the file", f.tlsCA)
		}
		cfg.RootCAs = pool
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together: give both or neither")
	}
	if f.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// saslMechanism returns the SASL mechanism the flags ask for, or nil for
// none.
func (f *connFlags) saslMechanism() (sasl.Mechanism, error) {
	pass := f.saslPass
	if pass == "" {
		pass = os.Getenv(passwordEnv)
	}
	if f.saslMech == "" {
		if f.saslUser != "" || f.saslPass != "" {
			return nil, errors.New("--sasl-user and --sasl-password need --sasl-mechanism (plain, scram-sha-256 or scram-sha-512)")
		}
		return nil, nil
	}
	if f.saslUser == "" {
		return nil, fmt.Errorf("--sasl-mechanism %s needs --sasl-user", f.saslMech)
	}
	if pass == "" {
		return nil, fmt.Errorf("--sasl-mechanism %s needs a password: --sasl-password or $%s", f.saslMech, passwordEnv)
	}
	switch strings.ToLower(f.saslMech) {
	case "plain":
		return plain.Auth{User: f.saslUser, Pass: pass}.AsMechanism(), nil
	case "scram-sha-256":
		return scram.Auth{User: f.saslUser, Pass: pass}.AsSha256Mechanism(), nil
	case "scram-sha-512":
		return scram.Auth{User: f.saslUser, Pass: pass}.AsSha512Mechanism(), nil
	default:
		return nil, fmt.Errorf("--sasl-mechanism %q: want plain, scram-sha-256 or scram-sha-512", f.saslMech)
	}
}

// checkBrokerAddrs refuses a --brokers list with an empty address in it
// (a stray comma, an unset variable), which the client would dial as
// :9092.
func checkBrokerAddrs(brokers []string) error {
	for _, b := range brokers {
		if strings.TrimSpace(b) == "" {
			return fmt.Errorf("--brokers %q: an empty address; want host:port, comma-separated", strings.Join(brokers, ","))
		}
	}
	return nil
}

// kgoOpts returns the client options the flags ask for, followed by extra.
func (f *connFlags) kgoOpts(extra ...kgo.Opt) ([]kgo.Opt, error) {
	if len(f.brokers) == 0 {
		return nil, errors.New("--brokers: no broker given")
	}
	if err := checkBrokerAddrs(f.brokers); err != nil {
		return nil, err
	}
	if f.timeout < 0 {
		return nil, fmt.Errorf("--timeout %s: want a positive duration, or 0 for the Kafka client's own limits", f.timeout)
	}
	opts := []kgo.Opt{kgo.SeedBrokers(f.brokers...), kgo.ClientID("sluice-cli")}
	if f.global != nil {
		logger, err := f.global.logger()
		if err != nil {
			return nil, err
		}
		// The commands return the client's failures as their errors; its
		// warnings about retries would only repeat them, so they show at
		// debug level only.
		if logger.Enabled(context.Background(), slog.LevelDebug) {
			opts = append(opts, kgo.WithLogger(kafka.Logger(logger)))
		}
	}
	if f.timeout > 0 {
		opts = append(opts, kgo.DialTimeout(f.timeout), kgo.RetryTimeout(f.timeout))
	}
	tlsCfg, err := f.tlsConfig()
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		opts = append(opts, kgo.DialTLSConfig(tlsCfg))
	}
	mech, err := f.saslMechanism()
	if err != nil {
		return nil, err
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	return append(opts, extra...), nil
}

// client connects a Kafka client with the flags' settings and extra options.
func (f *connFlags) client(extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := f.kgoOpts(extra...)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return cl, nil
}

// admin connects an admin client with the flags' settings. Closing it closes
// its Kafka client.
func (f *connFlags) admin() (*kadm.Client, *kgo.Client, error) {
	cl, err := f.client()
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl, nil
}

// requestContext bounds one round of requests by --timeout.
func (f *connFlags) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if f.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, f.timeout)
}
