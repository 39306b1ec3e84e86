package sluice_test

// A record of an uncompressed batch that a task holds keeps nothing of the
// fetch response it came in when that response held compressed batches too.

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

// plainRecordHooks keeps a weak pointer into the fetch response of the
// value of the first record of an uncompressed batch of topic the client
// buffers, and notes whether it buffered records of compressed batches.
type plainRecordHooks struct {
	topic      string
	mu         sync.Mutex
	plain      weak.Pointer[byte]
	seenPlain  bool
	compressed bool
}

func (h *plainRecordHooks) OnFetchRecordBuffered(r *kgo.Record) {
	if r.Topic != h.topic {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Attrs.CompressionType() != 0 {
		h.compressed = true
	} else if !h.seenPlain {
		h.seenPlain = true
		h.plain = weak.Make(&r.Value[0])
	}
}

// produceBatch produces recs to partition 0 of their topic with compression
// and waits for them: with a linger, in one batch or few.
func produceBatch(t *testing.T, addrs []string, compression kgo.CompressionCodec, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ProducerBatchCompression(compression),
		kgo.ProducerLinger(50*time.Millisecond), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// The client leaves the bytes of an uncompressed batch's records in the
// response it read them from, which holds everything fetched at once: a
// record of a single-record batch, which comes uncompressed among
// compressed ones, held by a slow handler, must not keep the whole
// response alive. It reaches the handler whole: key, value and headers.
func TestAHeldRecordOfAnUncompressedBatchKeepsNothingOfItsFetchResponse(t *testing.T) {
	b := startBroker(t)
	const topic = "plainheld-in"
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	_, err = kadm.NewClient(cl).CreateTopic(context.Background(), 1, 1, nil, topic)
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for range 200 {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("c"), Value: bytes.Repeat([]byte("compressible "), 20)})
	}
	produceBatch(t, b.Addrs(), kgo.SnappyCompression(), recs...)
	produceBatch(t, b.Addrs(), kgo.NoCompression(), &kgo.Record{Topic: topic, Key: []byte("plain"), Value: []byte("plain value"),
		Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("header value")}}})

	hooks := &plainRecordHooks{topic: topic}
	holding := make(chan string, 1)
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	g := sluice.DefineGroup[int64]("plainheld")
	sluice.Input(g, topic, codec.Bytes(), func(ctx *sluice.Context[int64], v []byte) error {
		if ctx.Key() != "plain" {
			return nil
		}
		var hs []string
		for _, h := range ctx.Headers() {
			hs = append(hs, h.Key+"="+string(h.Value))
		}
		holding <- string(v) + " " + strings.Join(hs, ",")
		<-release
		return nil
	})
	p, err := sluice.NewProcessor(g, append(processorOpts(b, 1, t.TempDir()),
		sluice.KafkaOptions(kgo.WithHooks(hooks)))...)
	if err != nil {
		t.Fatal(err)
	}
	r := runInBackground(t, p.Run)
	t.Cleanup(unblock) // before the processor's stop, which waits for the handler
	if got, want := await(t, holding, 30*time.Second, "the uncompressed record in the handler"), "plain value h=header value"; got != want {
		t.Fatalf("the handler got %q, want %q", got, want)
	}
	hooks.mu.Lock()
	compressed, plain := hooks.compressed, hooks.plain
	hooks.mu.Unlock()
	if !compressed {
		t.Fatal("the fetch held no compressed batch")
	}
	waitFor(t, 10*time.Second, func() error {
		runtime.GC()
		if plain.Value() != nil {
			return errors.New("the fetch response of the record the handler holds is still reachable")
		}
		return nil
	})
	unblock()
	runUntil(t, p, func(s sluice.Stats) bool { return s.Consumed == 201 })
	r.stop(t)
}
