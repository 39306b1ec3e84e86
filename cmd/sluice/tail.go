package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// tailFlags are the flags of the tail command.
type tailFlags struct {
	from            string
	follow          bool
	partition       int32
	format          string
	count           int
	maxBytes        int
	readUncommitted bool
}

func newTailCmd(g *globalFlags) *cobra.Command {
	var (
		f  connFlags
		tf tailFlags
	)
	cmd := &cobra.Command{
		Use:   "tail TOPIC",
		Short: "Print a topic's records, one line each",
		Long: `Print a topic's records, one line each:

  TOPIC PARTITION OFFSET SIZE VALUE

where SIZE is the value's length in bytes and VALUE its first --max-bytes
bytes, with non-printable bytes escaped (\n, \t, \xNN). --format json prints
one JSON object per record instead, with topic, partition, offset,
timestamp, key, value and headers; keys and values are strings when they are
UTF-8 and base64 otherwise (key_base64, value_base64 are then true);
headers are an object of strings, the last one winning when a key repeats.

--from says where each partition starts:
  end           only records written from now on (the default)
  end-N         the last N records of each partition, e.g. end-10
  beginning     the oldest record kept
  <RFC 3339>    the first record at or after a time, e.g. 2026-11-22T05:00:00Z
  <unix ms>     the same as milliseconds since 1970, e.g. 1795410000000
                (a time before 1970 starts at the first record)

Without --follow, tail stops at the end offsets it found when it started, so
with --from end it prints nothing; with --follow it waits for new records
until Ctrl-C or --count records. Only committed records of transactions are
shown (read_committed), unless --read-uncommitted.`,
		Example: `  sluice tail user-clicks -f
  sluice tail user-clicks --from end-5
  sluice tail user-clicks --from beginning --format json | jq .value
  sluice tail orders --from 2026-11-22T05:00:00Z --partition 2 --count 100`,
		Args: exactArgs("TOPIC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return tail(cmd.Context(), &f, &tf, cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0])
		},
	}
	f.register(cmd, g)
	fs := cmd.Flags()
	fs.StringVar(&tf.from, "from", "end", "where to start: end, end-N, beginning, an RFC 3339 time or unix milliseconds")
	fs.BoolVarP(&tf.follow, "follow", "f", false, "keep waiting for new records")
	fs.Int32Var(&tf.partition, "partition", -1, "read only this partition (-1: all)")
	fs.StringVar(&tf.format, "format", "text", "output format: text or json")
	fs.IntVar(&tf.count, "count", 0, "stop after this many records (0: no limit)")
	fs.IntVar(&tf.maxBytes, "max-bytes", 80, "how many bytes of each value the text format shows")
	fs.BoolVar(&tf.readUncommitted, "read-uncommitted", false, "also show records of open and aborted transactions")
	return cmd
}

// startPoint is where --from asks to start.
type startPoint struct {
	kind  string // "beginning", "end", "last" or "time"
	n     int64  // records before the end, for "last"
	milli int64  // for "time"
}

func parseFrom(s string) (startPoint, error) {
	switch s {
	case "beginning", "start", "earliest":
		return startPoint{kind: "beginning"}, nil
	case "end", "latest":
		return startPoint{kind: "end"}, nil
	}
	if rest, ok := strings.CutPrefix(s, "end-"); ok {
		n, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || n < 0 {
			return startPoint{}, fmt.Errorf("--from %q: want end-N with N a count of records, e.g. end-10", s)
		}
		return startPoint{kind: "last", n: n}, nil
	}
	// A time before 1970 is before every record. It must not reach Kafka
	// as it is: there negative times are special (-1 is the end, -2 the
	// beginning).
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return startPoint{kind: "time", milli: max(ms, 0)}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return startPoint{kind: "time", milli: max(t.UnixMilli(), 0)}, nil
	}
	return startPoint{}, fmt.Errorf("--from %q: want beginning, end, end-N, an RFC 3339 time (2026-11-22T05:00:00Z) or unix milliseconds", s)
}

func tail(ctx context.Context, f *connFlags, tf *tailFlags, out, errOut io.Writer, topic string) error {
	from, err := parseFrom(tf.from)
	if err != nil {
		return err
	}
	if tf.format != "text" && tf.format != "json" {
		return fmt.Errorf("--format %q: want text or json", tf.format)
	}
	if tf.count < 0 || tf.maxBytes < 0 {
		return errors.New("--count and --max-bytes must not be negative")
	}
	if tf.partition < -1 {
		return fmt.Errorf("--partition %d: want a partition, or -1 for all", tf.partition)
	}
	isolation := kgo.ReadCommitted()
	if tf.readUncommitted {
		isolation = kgo.ReadUncommitted()
	}
	cl, err := f.client(kgo.KeepControlRecords(), kgo.FetchIsolationLevel(isolation))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	rctx, cancel := f.requestContext(ctx)
	defer cancel()
	listEnds := adm.ListCommittedOffsets
	if tf.readUncommitted {
		listEnds = adm.ListEndOffsets
	}
	ends, err := listOffsets(rctx, listEnds, topic)
	if err != nil {
		return err
	}
	if tf.partition >= 0 {
		e, ok := ends[tf.partition]
		if !ok {
			return fmt.Errorf("--partition %d: %s has partitions 0 to %d", tf.partition, topic, len(ends)-1)
		}
		ends = map[int32]int64{tf.partition: e}
	}
	starts := ends
	switch from.kind {
	case "beginning", "last":
		all, err := listOffsets(rctx, adm.ListStartOffsets, topic)
		if err != nil {
			return err
		}
		starts = make(map[int32]int64, len(ends))
		for p, e := range ends {
			starts[p] = all[p]
			if from.kind == "last" {
				starts[p] = max(all[p], e-from.n)
			}
		}
	case "time":
		listed, err := adm.ListOffsetsAfterMilli(rctx, from.milli, topic)
		if err != nil {
			return fmt.Errorf("list offsets of %s after %d: %w", topic, from.milli, err)
		}
		starts = make(map[int32]int64, len(ends))
		for p, e := range ends {
			starts[p] = e
			if o, ok := listed.Lookup(topic, p); ok && o.Err == nil && o.Offset >= 0 {
				starts[p] = min(o.Offset, e)
			}
		}
	}
	cancel()
	until := ends
	if tf.follow {
		until = nil
	}

	enc := json.NewEncoder(out)
	shown := 0
	var werr error
	err = readPartitions(ctx, cl, topic, starts, until, func(r *kgo.Record) bool {
		if tf.format == "json" {
			werr = enc.Encode(jsonRecord(r))
		} else {
			_, werr = fmt.Fprintf(out, "%s %d %d %d %s\n", r.Topic, r.Partition, r.Offset, len(r.Value), escapePrefix(r.Value, tf.maxBytes))
		}
		shown++
		return werr == nil && (tf.count == 0 || shown < tf.count)
	})
	if werr != nil {
		return werr
	}
	if err != nil && !(tf.follow && errors.Is(err, context.Canceled)) {
		return err
	}
	if shown == 0 && !tf.follow {
		fmt.Fprintf(errOut, "no records in %s after --from %s; pass -f to wait for new ones\n", topic, tf.from)
	}
	return nil
}

// escapePrefix returns up to max bytes of v, with bytes that are not
// printable UTF-8 escaped.
func escapePrefix(v []byte, max int) string {
	if len(v) > max {
		v = v[:max]
	}
	var b strings.Builder
	for len(v) > 0 {
		r, size := utf8.DecodeRune(v)
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == utf8.RuneError && size <= 1, r < 0x20, r == 0x7f, !strconv.IsPrint(r) && r != ' ':
			for _, c := range v[:size] {
				fmt.Fprintf(&b, `\x%02x`, c)
			}
		default:
			b.Write(v[:size])
		}
		v = v[size:]
	}
	return b.String()
}

// tailRecord is a record as tail --format json prints it.
type tailRecord struct {
	Topic       string            `json:"topic"`
	Partition   int32             `json:"partition"`
	Offset      int64             `json:"offset"`
	Timestamp   time.Time         `json:"timestamp"`
	Key         *string           `json:"key"`
	KeyBase64   bool              `json:"key_base64,omitempty"`
	Value       *string           `json:"value"`
	ValueBase64 bool              `json:"value_base64,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
}

func jsonRecord(r *kgo.Record) tailRecord {
	out := tailRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UTC()}
	out.Key, out.KeyBase64 = jsonBytes(r.Key)
	out.Value, out.ValueBase64 = jsonBytes(r.Value)
	if len(r.Headers) > 0 {
		out.Headers = make(map[string]string, len(r.Headers))
		for _, h := range r.Headers {
			out.Headers[h.Key] = string(h.Value)
		}
	}
	return out
}

// jsonBytes returns b as a string for JSON: nil stays null, UTF-8 as it is,
// anything else base64-encoded (reported by the second result).
func jsonBytes(b []byte) (*string, bool) {
	if b == nil {
		return nil, false
	}
	if utf8.Valid(b) {
		s := string(b)
		return &s, false
	}
	s := base64.StdEncoding.EncodeToString(b)
	return &s, true
}
