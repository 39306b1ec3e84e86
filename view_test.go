package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
)

// topicExists asks the broker whether topic exists.
func topicExists(t *testing.T, b *broker.Broker, topic string) bool {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topics, err := kadm.NewClient(cl).ListTopics(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return topics.Has(topic)
}

// A view started before the group that owns its table waits for the table
// topic instead of creating it with its own TopicDefaults, which would give
// the table another partition count than the group's inputs.
func TestViewStartedBeforeItsGroupWaitsForTheTableTopic(t *testing.T) {
	b := startBroker(t)
	const table = "early-table"
	// The view's defaults say 4 partitions; the group's input has 2.
	v, err := sluice.NewView(table, codec.JSON[counter](), viewOpts(b, 4)...)
	if err != nil {
		t.Fatal(err)
	}
	view := runInBackground(t, v.Run)
	waitFor(t, 10*time.Second, func() error {
		if s := v.Stats(); s.State != sluice.ViewWaiting {
			return fmt.Errorf("view state %s, want waiting", s.State)
		}
		return nil
	})
	if topicExists(t, b, table) {
		t.Fatalf("the waiting view created %s", table)
	}

	em := newEmitter(t, "early-clicks", emitterOpts(b, 2))
	emitAll(t, em, "a", "x", "b", "x", "a", "x")
	proc := runProcessor(t, defineCounter("early", "early-clicks"), processorOpts(b, 2, t.TempDir())...)
	expectCounts(t, v, map[string]int64{"a": 2, "b": 1}, 30*time.Second)
	if s := v.Stats(); s.State != sluice.ViewRunning {
		t.Errorf("view state %s after it served rows, want running", s.State)
	}
	select {
	case <-proc.done:
		t.Fatalf("group stopped: %v", proc.err)
	default:
	}
	proc.stop(t)
	view.stop(t)
}

// With TopicWait a view gives up on a table topic that does not appear, with
// an error that says so, and creates nothing.
func TestViewWithTopicWaitFailsClearlyWhenTheTableTopicNeverAppears(t *testing.T) {
	b := startBroker(t)
	const table = "never-table"
	v, err := sluice.NewView(table, codec.String(), append(viewOpts(b, 2), sluice.TopicWait(time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = v.Run(ctx)
	if !errors.Is(err, sluice.ErrTopicNotFound) {
		t.Fatalf("Run = %v, want an error wrapping ErrTopicNotFound", err)
	}
	t.Logf("Run: %v", err)
	if ctx.Err() != nil {
		t.Fatalf("Run gave up only when the test's context ended")
	}
	if topicExists(t, b, table) {
		t.Fatalf("the view created %s", table)
	}
	if werr := v.WaitReady(ctx); !errors.Is(werr, sluice.ErrTopicNotFound) {
		t.Errorf("WaitReady = %v, want the error Run returned", werr)
	}
}
