package sluice_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
)

// defineTimed defines a group whose records "set <unix seconds>" set the
// event-time timer "t" of their key, "wall <unix milliseconds>" a
// wall-clock one, and mark its row "armed"; "probe" emits "<key> saw
// <stream time in Unix seconds>". Its
// timer handler emits "<key> fired by <who>" to output and marks the row
// "fired".
func defineTimed(name, input, output, who string) *sluice.Group[string] {
	g := sluice.DefineGroup[string](name)
	sluice.Persist(g, codec.String())
	out := sluice.Output(g, output, codec.String())
	sluice.Input(g, input, codec.String(), func(ctx *sluice.Context[string], v string) error {
		if sec, ok := strings.CutPrefix(v, "set "); ok {
			n, err := strconv.ParseInt(sec, 10, 64)
			if err != nil {
				return err
			}
			ctx.SetTimer("t", time.Unix(n, 0))
			ctx.SetValue("armed")
		}
		if v == "probe" {
			return out.Emit(ctx, ctx.Key(), fmt.Sprintf("%s saw %d", ctx.Key(), ctx.StreamTime().Unix()))
		}
		if ms, ok := strings.CutPrefix(v, "wall "); ok {
			n, err := strconv.ParseInt(ms, 10, 64)
			if err != nil {
				return err
			}
			ctx.SetWallTimer("t", time.UnixMilli(n))
			ctx.SetValue("armed")
		}
		return nil
	})
	sluice.OnTimer(g, func(ctx *sluice.Context[string], t sluice.Timer) error {
		ctx.SetValue("fired")
		return out.Emit(ctx, ctx.Key(), ctx.Key()+" fired by "+who)
	})
	return g
}

// produceAt writes key=value with the timestamp of sec Unix seconds, on the
// partition Murmur2 places key on.
func produceAt(t *testing.T, b *broker.Broker, topic string, sec int64, key, value string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	r := &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(value), Timestamp: time.Unix(sec, 0)}
	if err := cl.ProduceSync(t.Context(), r).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// keyOn returns a key that Murmur2 places on partition p of n.
func keyOn(prefix string, p, n int32) string {
	for i := 0; ; i++ {
		if k := prefix + strconv.Itoa(i); sluice.Murmur2.Partition(k, n) == p {
			return k
		}
	}
}

// waitRows waits until the view's row of each key is want.
func waitRows(t *testing.T, v *sluice.View[string], want string, keys ...string) {
	t.Helper()
	waitFor(t, 30*time.Second, func() error {
		for _, k := range keys {
			if got, err := v.Get(k); err != nil || got != want {
				return fmt.Errorf("row %s = %q, %v; want %q", k, got, err, want)
			}
		}
		return nil
	})
}

// waitFired waits until the output holds one firing of each key and
// returns the firings.
func waitFired(t *testing.T, b *broker.Broker, topic string, keys ...string) []string {
	t.Helper()
	var got []string
	waitFor(t, 30*time.Second, func() error {
		got = readTopic(t, b.Addrs(), topic, true)
		for _, k := range keys {
			n := 0
			for _, v := range got {
				if strings.HasPrefix(v, k+" fired") {
					n++
				}
			}
			if n != 1 {
				return fmt.Errorf("%s fired %d times, want once: %q", k, n, got)
			}
		}
		return nil
	})
	return got
}

var guarantees = []struct {
	name string
	g    sluice.DeliveryGuarantee
}{{"at-least-once", sluice.AtLeastOnce}, {"exactly-once", sluice.ExactlyOnce}}

// A timer set before a graceful stop fires once, after the restart, when
// stream time passes it: kept in the local store, and restored from the
// changelog into a new one.
func TestTimerFiresOnceAfterARestart(t *testing.T) {
	for _, gu := range guarantees {
		for _, fresh := range []bool{false, true} {
			name := gu.name + "/same-state-dir"
			if fresh {
				name = gu.name + "/fresh-state-dir"
			}
			t.Run(name, func(t *testing.T) {
				b := startBroker(t)
				const in, out = "timer-in", "timer-out"
				g := defineTimed("timers", in, out, "p")
				dir := t.TempDir()
				opts := func(dir string) []sluice.ProcessorOpt {
					return append(processorOpts(b, 1, dir), sluice.Guarantee(gu.g))
				}
				first := runProcessor(t, g, opts(dir)...)
				produceAt(t, b, in, 1000, "k", "set 1010")
				v := startView(t, g.TableTopic(), codec.String(), viewOpts(b, 1)...)
				waitRows(t, v, "armed", "k")
				var keys []string
				if err := v.Iterate("", "", func(k, _ string) bool { keys = append(keys, k); return true }); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(keys, []string{"k"}) {
					t.Errorf("view keys = %q, want [k]: the timer and stream-time rows are sluice's", keys)
				}
				first.stop(t)
				if got := readTopic(t, b.Addrs(), out, true); len(got) != 0 {
					t.Fatalf("fired before stream time passed it: %q", got)
				}

				if fresh {
					dir = t.TempDir()
				}
				runProcessor(t, g, opts(dir)...)
				// A late record sees the stream time the first run left.
				produceAt(t, b, in, 900, "late", "probe")
				waitFor(t, 30*time.Second, func() error {
					if got := readTopic(t, b.Addrs(), out, true); !slices.Equal(got, []string{"late saw 1000"}) {
						return fmt.Errorf("output %q, want [late saw 1000]", got)
					}
					return nil
				})
				produceAt(t, b, in, 1020, "other", "")
				waitFired(t, b, out, "k")
				waitRows(t, v, "fired", "k")
			})
		}
	}
}

// A timer whose partition moves to a processor that joins the group fires
// there, once.
func TestTimerFiresOnTheNewOwnerAfterARebalance(t *testing.T) {
	for _, gu := range guarantees {
		t.Run(gu.name, func(t *testing.T) {
			b := startBroker(t)
			const in, out, parts = "moving-in", "moving-out", 2
			opts := func() []sluice.ProcessorOpt {
				return append(processorOpts(b, parts, t.TempDir()), sluice.Guarantee(gu.g))
			}
			keys := []string{keyOn("k", 0, parts), keyOn("k", 1, parts)}
			first := runProcessor(t, defineTimed("moving", in, out, "first"), opts()...)
			for _, k := range keys {
				produceAt(t, b, in, 1000, k, "set 1010")
			}
			v := startView(t, "moving-table", codec.String(), viewOpts(b, parts)...)
			waitRows(t, v, "armed", keys...)

			p2, err := sluice.NewProcessor(defineTimed("moving", in, out, "second"), opts()...)
			if err != nil {
				t.Fatal(err)
			}
			runInBackground(t, p2.Run)
			waitFor(t, 30*time.Second, func() error {
				if s := p2.Stats(); len(s.Partitions) != 1 || s.Partitions[0].State != "running" {
					return fmt.Errorf("second processor owns %v, want one running partition", s.Partitions)
				}
				return nil
			})
			for p := range int32(parts) {
				produceAt(t, b, in, 1020, keyOn("tick", p, parts), "")
			}
			got := waitFired(t, b, out, keys...)
			if !slices.ContainsFunc(got, func(s string) bool { return strings.HasSuffix(s, "by second") }) {
				t.Errorf("firings %q: none on the processor that took a partition", got)
			}
			first.stop(t)
		})
	}
}

// A wall-clock timer fires when its time comes, with no input to carry it.
func TestWallClockTimerFiresWithoutInput(t *testing.T) {
	for _, gu := range guarantees {
		t.Run(gu.name, func(t *testing.T) {
			b := startBroker(t)
			const in, out = "wall-in", "wall-out"
			g := defineTimed("wall", in, out, "p")
			runProcessor(t, g, append(processorOpts(b, 1, t.TempDir()), sluice.Guarantee(gu.g))...)
			due := time.Now().Add(time.Second)
			produceAt(t, b, in, 1000, "k", "wall "+strconv.FormatInt(due.UnixMilli(), 10))
			waitFired(t, b, out, "k")
			if now := time.Now(); now.Before(due) {
				t.Errorf("fired at %v, before its time %v", now, due)
			}
			v := startView(t, g.TableTopic(), codec.String(), viewOpts(b, 1)...)
			waitRows(t, v, "fired", "k")
		})
	}
}

// With IdleAdvance, stream time follows the wall clock once input stops,
// and an event-time timer fires with no record to pass it.
func TestIdleAdvanceFiresEventTimersWhenInputStops(t *testing.T) {
	for _, gu := range guarantees {
		t.Run(gu.name, func(t *testing.T) {
			b := startBroker(t)
			const in, out = "idle-in", "idle-out"
			g := defineTimed("idle", in, out, "p")
			opts := append(processorOpts(b, 1, t.TempDir()), sluice.Guarantee(gu.g), sluice.IdleAdvance(200*time.Millisecond))
			runProcessor(t, g, opts...)
			produceAt(t, b, in, 1000, "k", "set 1001")
			waitFired(t, b, out, "k")
		})
	}
}

// A timer set before a stop and set again on a processor that restored the
// partition into a new state dir is replaced: it fires once, at its new time.
func TestTimerSetAgainAfterARestoreElsewhereFiresOnceAtItsNewTime(t *testing.T) {
	for _, gu := range guarantees {
		t.Run(gu.name, func(t *testing.T) {
			b := startBroker(t)
			const in, out = "again-in", "again-out"
			g := defineTimed("again", in, out, "p")
			opts := func() []sluice.ProcessorOpt {
				return append(processorOpts(b, 1, t.TempDir()), sluice.Guarantee(gu.g))
			}
			first := runProcessor(t, g, opts()...)
			produceAt(t, b, in, 1000, "k", "set 1010")
			v := startView(t, g.TableTopic(), codec.String(), viewOpts(b, 1)...)
			waitRows(t, v, "armed", "k")
			first.stop(t)

			runProcessor(t, g, opts()...)
			produceAt(t, b, in, 1001, "k", "set 1030")
			produceAt(t, b, in, 1020, "p", "probe")
			// The probe runs after the timers due by its time fired.
			waitFor(t, 30*time.Second, func() error {
				if got := readTopic(t, b.Addrs(), out, true); !slices.Contains(got, "p saw 1020") {
					return fmt.Errorf("output %q, want p saw 1020", got)
				}
				return nil
			})
			if got := readTopic(t, b.Addrs(), out, true); !slices.Equal(got, []string{"p saw 1020"}) {
				t.Fatalf("output %q, want only the probe: the timer was set again for 1030", got)
			}
			produceAt(t, b, in, 1040, "p", "")
			waitFired(t, b, out, "k")
		})
	}
}
