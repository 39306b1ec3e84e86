package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/internal/kafka"
	"github.com/sluice-io/sluice/internal/progress"
)

// produceFlags are the flags of the produce command.
type produceFlags struct {
	file       string
	keySep     string
	headers    []string
	partition  int32
	json       bool
	progress   bool
	noProgress bool
}

func newProduceCmd(g *globalFlags) *cobra.Command {
	var (
		f  connFlags
		pf produceFlags
	)
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Write lines from stdin or a file to a topic, one record per line",
		Long: `Write lines from stdin or --file to a topic, one record per line. Empty
lines are skipped. The topic must exist.

With --key-separator, each line is split at the first separator into key and
value; a line without the separator is a record without a key. Keyed records
are placed with Kafka's murmur2 partitioner, as sluice emitters and processors
place them by default, unless --partition is given.

With --json, every value must be valid JSON. At the first line that is not,
produce stops: the records before it are written, nothing from that line on
is, and the error names the line.

When reading a file and stderr is a terminal, a progress bar shows the bytes
read and the records written per second (--progress shows it anyway,
--no-progress never).`,
		Example: `  echo '{"clicks":1}' | sluice produce user-clicks
  sluice produce user-clicks --file clicks.txt --key-separator ':' --header source=backfill
  sluice produce orders --file orders.jsonl --json --partition 0`,
		Args: exactArgs("TOPIC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return produce(cmd, &f, &pf, args[0])
		},
	}
	f.register(cmd, g)
	fs := cmd.Flags()
	fs.StringVar(&pf.file, "file", "", "read the lines from this file instead of stdin")
	fs.StringVar(&pf.keySep, "key-separator", "", "split each line into key and value at the first occurrence of this")
	fs.StringArrayVar(&pf.headers, "header", nil, "header key=value added to every record, repeatable")
	fs.Int32Var(&pf.partition, "partition", -1, "write every record to this partition (-1: place by key)")
	fs.BoolVar(&pf.json, "json", false, "require every value to be valid JSON")
	fs.BoolVar(&pf.progress, "progress", false, "show progress even when stderr is not a terminal")
	fs.BoolVar(&pf.noProgress, "no-progress", false, "never show progress")
	return cmd
}

func produce(cmd *cobra.Command, f *connFlags, pf *produceFlags, topic string) error {
	ctx := cmd.Context()
	if pf.progress && pf.noProgress {
		return errors.New("--progress and --no-progress exclude each other")
	}
	var headers []kgo.RecordHeader
	for _, h := range pf.headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok || k == "" {
			return fmt.Errorf("--header %q: want key=value", h)
		}
		headers = append(headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	var (
		in    io.Reader = cmd.InOrStdin()
		total int64
	)
	if pf.file != "" {
		file, err := os.Open(pf.file)
		if err != nil {
			return err
		}
		defer file.Close()
		if fi, err := file.Stat(); err == nil {
			total = fi.Size()
		}
		in = file
	}
	opts := []kgo.Opt{kgo.RecordPartitioner(kafka.Partitioner(kafka.Murmur2)), kgo.DefaultProduceTopic(topic)}
	if f.timeout > 0 {
		opts = append(opts, kgo.RecordDeliveryTimeout(f.timeout))
	}
	cl, err := f.client(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	rctx, cancel := f.requestContext(ctx)
	counts, missing, err := kafka.PartitionCounts(rctx, cl, topic)
	cancel()
	if err != nil {
		return err
	}
	if _, ok := missing[topic]; ok {
		return fmt.Errorf("topic %s does not exist (create it with: sluice topics create %s)", topic, topic)
	}
	if pf.partition < -1 || pf.partition >= counts[topic] {
		return fmt.Errorf("--partition %d: %s has partitions 0 to %d", pf.partition, topic, counts[topic]-1)
	}

	var bar *progress.Bar
	errOut := cmd.ErrOrStderr()
	if pf.progress || (!pf.noProgress && pf.file != "" && progress.IsTerminal(errOut)) {
		bar = progress.New(errOut, total, "B")
	}

	var (
		mu       sync.Mutex
		sent     int64
		firstErr error
	)
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return firstErr
	}
	began := time.Now()
	// Lines are read on their own goroutine so that an interrupt stops
	// produce even while it waits for input on a terminal.
	lines, stop := make(chan readLine, 64), make(chan struct{})
	defer close(stop)
	go readLines(in, lines, stop)
	// Records handed to the client are written even after an interrupt, so
	// that the count of records written is exact.
	pctx := context.WithoutCancel(ctx)
	lineNo, records := 0, 0
	var (
		readErr    error
		failedLine int // the line readErr is about
	)
read:
	for {
		var rl readLine
		select {
		case <-ctx.Done():
			break read
		case rl = <-lines:
		}
		if rl.err != nil {
			if !errors.Is(rl.err, io.EOF) {
				failedLine = lineNo + 1
				readErr = fmt.Errorf("read line %d: %w", failedLine, rl.err)
			}
			break
		}
		lineNo++
		bar.Add(int64(len(rl.line)))
		line := bytes.TrimSuffix(bytes.TrimSuffix(rl.line, []byte("\n")), []byte("\r"))
		if len(line) == 0 {
			continue
		}
		r := &kgo.Record{Topic: topic, Partition: pf.partition, Value: line, Headers: headers}
		if pf.keySep != "" {
			if k, v, ok := bytes.Cut(line, []byte(pf.keySep)); ok {
				r.Key, r.Value = k, v
			}
		}
		if pf.json {
			var v json.RawMessage
			if err := json.Unmarshal(r.Value, &v); err != nil {
				failedLine = lineNo
				readErr = fmt.Errorf("line %d: invalid JSON: %w", failedLine, err)
				break
			}
		}
		if failed() != nil {
			break
		}
		records++
		cl.Produce(pctx, r, func(_ *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			sent++
			bar.AddRecords(1)
		})
	}
	fctx, cancel := context.WithTimeout(pctx, max(f.timeout, 10*time.Second))
	flushErr := cl.Flush(fctx)
	cancel()
	bar.Done()
	elapsed := time.Since(began).Round(time.Millisecond)
	mu.Lock()
	n, perr := sent, firstErr
	mu.Unlock()
	switch {
	case perr != nil:
		return fmt.Errorf("produce to %s: %w; %d of the %d records read were written", topic, perr, n, records)
	case flushErr != nil:
		return fmt.Errorf("produce to %s: %w; %d of the %d records read were written", topic, flushErr, n, records)
	case readErr != nil:
		return fmt.Errorf("%w; the %d records before it were written to %s, nothing from line %d on", readErr, n, topic, failedLine)
	case ctx.Err() != nil:
		// Not wrapped: an interrupted produce still says how far it got.
		return fmt.Errorf("interrupted after line %d: %d records written to %s", lineNo, n, topic)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%d records to %s in %s\n", n, topic, elapsed)
	return nil
}

// readLine is one line read, with its line end, or the error that ended
// reading (io.EOF at the end of the input).
type readLine struct {
	line []byte
	err  error
}

// readLines sends the lines of in to lines, then the error that ended them,
// until stop is closed.
func readLines(in io.Reader, lines chan<- readLine, stop <-chan struct{}) {
	r := bufio.NewReaderSize(in, 64<<10)
	send := func(rl readLine) bool {
		select {
		case lines <- rl:
			return true
		case <-stop:
			return false
		}
	}
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && !send(readLine{line: line}) {
			return
		}
		if err != nil {
			send(readLine{err: err})
			return
		}
	}
}
