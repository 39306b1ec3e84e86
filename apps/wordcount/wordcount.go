// Package wordcount is Kasper's word count as a batch processor: it reads
// lines of text from the topic "words", splits each on white space, counts
// every word in a store, and for every word it reads writes
// "<word> has been seen <N> times" to "word-counts", where N is the count
// before this occurrence.
//
// Two batch groups do the work. "word-count-split" splits the lines and
// sends each word, keyed by itself, to the topic "word-count-words";
// "word-count" counts them from there. As every occurrence of a word reaches
// the same partition, and so the same task, the counts are right whether
// they are kept in a store shared by all partitions (in memory, or Redis)
// or in the counting group's own changelogged table, whose rows belong to
// partitions.
//
// `sluice run wordcount` runs it; a program runs it with
//
//	err := wordcount.Run(ctx, wordcount.Config{Brokers: []string{"127.0.0.1:9092"}, Store: "table"})
package wordcount

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/kv"
	"github.com/sluice-io/sluice/kv/redis"
	"github.com/sluice-io/sluice/store"
)

const (
	// Input is the topic of lines of text.
	Input = "words"
	// Output is the topic of "<word> has been seen <N> times".
	Output = "word-counts"
	// Group is the counting group.
	Group = "word-count"
	// SplitGroup splits lines into words keyed by themselves, for a count
	// kept in the table.
	SplitGroup = "word-count-split"
	// Words is the topic of single words keyed by themselves, written by
	// SplitGroup.
	Words = "word-count-words"
	// RedisPrefix is the prefix of the keys of the counts in Redis: the
	// count of a word is under RedisPrefix + word.
	RedisPrefix = "word-count/count/"
)

// DefineSplit defines the group that reads lines from input and writes each
// of their words, keyed by itself, to output.
func DefineSplit(name, input, output string) *sluice.BatchGroup[string, string] {
	bg := sluice.DefineBatchGroup[string, string](name)
	sluice.BatchInput(bg, input, codec.String(), codec.String())
	out := sluice.BatchOutput(bg, output, codec.String())
	sluice.HandleBatches(bg, func(_ sluice.BatchContext, recs []sluice.Record[string, string], s sluice.Sender) error {
		for _, r := range recs {
			for _, w := range strings.Fields(r.Value) {
				if err := out.Send(s, w, w); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return bg
}

// DefineCount defines the group that counts the words of the lines in input
// and writes "<word> has been seen <N> times" to output for each, keeping
// the counts in counts, or in its table if counts is nil. Each word's
// records must be on one partition of input, as when they are keyed by the
// word as DefineSplit writes them: otherwise tasks of different partitions
// would count one word at once (with a shared store), or apart (with the
// table).
func DefineCount(name, input, output string, counts kv.Store[int64]) *sluice.BatchGroup[string, string] {
	bg := sluice.DefineBatchGroup[string, string](name)
	sluice.BatchInput(bg, input, codec.String(), codec.String())
	out := sluice.BatchOutput(bg, output, codec.String())
	var st *sluice.BatchStore[int64]
	if counts == nil {
		st = sluice.BatchTable(bg, codec.Int64())
	} else {
		st = sluice.BatchState(bg, counts)
	}
	sluice.HandleBatches(bg, func(ctx sluice.BatchContext, recs []sluice.Record[string, string], s sluice.Sender) error {
		var words []string
		for _, r := range recs {
			words = append(words, strings.Fields(r.Value)...)
		}
		if len(words) == 0 {
			return nil
		}
		kvs := st.Store(ctx)
		seen, err := kvs.GetMany(ctx.Context(), distinct(words))
		if err != nil {
			return err
		}
		var text []byte
		for _, w := range words {
			n := seen[w]
			text = append(text[:0], w...)
			text = append(text, " has been seen "...)
			text = strconv.AppendInt(text, n, 10)
			text = append(text, " times"...)
			if err := out.Send(s, w, string(text)); err != nil {
				return err
			}
			seen[w] = n + 1
		}
		return kvs.PutMany(ctx.Context(), seen)
	})
	return bg
}

func distinct(words []string) []string {
	set := make(map[string]struct{}, len(words))
	var out []string
	for _, w := range words {
		if _, ok := set[w]; !ok {
			set[w] = struct{}{}
			out = append(out, w)
		}
	}
	return out
}

// Define defines the word count's groups: the splitting group and the
// counting group, which keeps its counts in counts, or in its table if
// counts is nil.
func Define(counts kv.Store[int64]) []*sluice.BatchGroup[string, string] {
	return []*sluice.BatchGroup[string, string]{
		DefineSplit(SplitGroup, Input, Words),
		DefineCount(Group, Words, Output, counts),
	}
}

// Config configures Run.
type Config struct {
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// Store is where the counts are kept: "memory" (the default), "table"
	// for the counting group's table, or a Redis URL,
	// "redis://host:port", for keys "word-count/count/<word>": Run fails
	// at once if that Redis does not answer.
	Store string
	// Storage is where the table is kept locally; nil means the default
	// Pebble directory.
	Storage store.Builder
	// BatchSize and BatchWait bound the batches; zero means the defaults
	// (1000 records, 5s).
	BatchSize int
	BatchWait time.Duration
	// Guarantee is the processors' delivery guarantee. Default: at least
	// once.
	Guarantee sluice.DeliveryGuarantee
	// Logger receives the processors' logs. Default: discard.
	Logger *slog.Logger
	// Options are more options for the processors.
	Options []sluice.ProcessorOpt
}

// Run runs the word count's processors until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	opts := []sluice.BatchProcessorOpt{sluice.Guarantee(cfg.Guarantee)}
	if len(cfg.Brokers) > 0 {
		opts = append(opts, sluice.Brokers(cfg.Brokers...))
	}
	if cfg.Logger != nil {
		opts = append(opts, sluice.Logger(cfg.Logger))
	}
	if cfg.Storage != nil {
		opts = append(opts, sluice.Storage(cfg.Storage))
	}
	if cfg.BatchSize != 0 {
		opts = append(opts, sluice.BatchSize(cfg.BatchSize))
	}
	if cfg.BatchWait != 0 {
		opts = append(opts, sluice.BatchWait(cfg.BatchWait))
	}
	for _, o := range cfg.Options {
		opts = append(opts, o)
	}
	counts, closeStore, err := openStore(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer closeStore()
	var procs []*sluice.BatchProcessor[string, string]
	for _, bg := range Define(counts) {
		p, err := sluice.NewBatchProcessor(bg, opts...)
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, p := range procs {
		g.Go(func() error { return p.Run(gctx) })
	}
	return g.Wait()
}

// redisPingTimeout bounds how long Run waits for Redis to answer at start.
const redisPingTimeout = 5 * time.Second

// openStore returns the counts store that store names, nil for the table,
// and a function that releases it. A Redis that does not answer is an
// error now rather than at the first batch of words.
func openStore(ctx context.Context, store string) (kv.Store[int64], func(), error) {
	switch {
	case store == "" || store == "memory":
		return kv.NewMemory[int64](), func() {}, nil
	case store == "table":
		return nil, func() {}, nil
	case strings.HasPrefix(store, "redis://"):
		opts, err := goredis.ParseURL(store)
		if err != nil {
			return nil, nil, fmt.Errorf("store %q: %w", store, err)
		}
		client := goredis.NewClient(opts)
		pctx, cancel := context.WithTimeout(ctx, redisPingTimeout)
		defer cancel()
		if err := client.Ping(pctx).Err(); err != nil {
			_ = client.Close()
			return nil, nil, fmt.Errorf("store %q: %w", store, err)
		}
		counts := redis.New(client, codec.Int64(), redis.Prefix(RedisPrefix))
		return counts, func() { _ = client.Close() }, nil
	default:
		return nil, nil, fmt.Errorf("store %q: want memory, table or redis://host:port", store)
	}
}
