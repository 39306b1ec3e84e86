package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

func emitAll(t *testing.T, em *sluice.Emitter[string], kvs ...string) {
	t.Helper()
	for i := 0; i < len(kvs); i += 2 {
		if err := em.Emit(context.Background(), kvs[i], kvs[i+1]); err != nil {
			t.Fatal(err)
		}
	}
}

func newEmitter(t *testing.T, topic string, opts []sluice.EmitterOpt) *sluice.Emitter[string] {
	t.Helper()
	em, err := sluice.NewEmitter(topic, codec.String(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	return em
}

// A group joins a co-partitioned table (names by user) and looks up a table
// keyed otherwise (prices by product), and writes what it made to an output.
func TestJoinAndLookupTablesFeedHandlers(t *testing.T) {
	b := startBroker(t)
	const parts = 4
	eo := emitterOpts(b, parts)

	// The joined and looked-up tables are each kept by a group of their own.
	latest := func(name, input string) *sluice.Group[string] {
		g := sluice.DefineGroup[string](name)
		sluice.Persist(g, codec.String())
		sluice.Input(g, input, codec.String(), func(ctx *sluice.Context[string], v string) error {
			ctx.SetValue(v)
			return nil
		})
		return g
	}
	runProcessor(t, latest("names", "name-updates"), processorOpts(b, parts, t.TempDir())...)
	runProcessor(t, latest("prices", "price-updates"), processorOpts(b, parts, t.TempDir())...)
	emitAll(t, newEmitter(t, "name-updates", eo), "u1", "Ada", "u2", "Grace")
	emitAll(t, newEmitter(t, "price-updates", eo), "apple", "3", "pear", "5")
	nameView := startView(t, "names-table", codec.String(), viewOpts(b, parts)...)
	priceView := startView(t, "prices-table", codec.String(), viewOpts(b, parts)...)
	waitFor(t, 20*time.Second, func() error {
		for _, k := range []string{"u1", "u2"} {
			if ok, _ := nameView.Has(k); !ok {
				return fmt.Errorf("name of %s not in table yet", k)
			}
		}
		for _, k := range []string{"apple", "pear"} {
			if ok, _ := priceView.Has(k); !ok {
				return fmt.Errorf("price of %s not in table yet", k)
			}
		}
		return nil
	})

	// spend: per user, the sum of the prices of the products they bought.
	g := sluice.DefineGroup[int64]("spend")
	sluice.Persist(g, codec.Int64())
	names := sluice.Join(g, "names-table", codec.String())
	prices := sluice.Lookup(g, "prices-table", codec.String())
	receipts := sluice.Output(g, "receipts", codec.String())
	sluice.Input(g, "purchases", codec.String(), func(ctx *sluice.Context[int64], product string) error {
		name, ok, err := names.Get(ctx)
		if err != nil || !ok {
			return fmt.Errorf("no name for %s: %v", ctx.Key(), err)
		}
		price, ok, err := prices.Get(ctx, product)
		if err != nil || !ok {
			return fmt.Errorf("no price for %s: %v", product, err)
		}
		p, err := strconv.ParseInt(price, 10, 64)
		if err != nil {
			return err
		}
		total, _ := ctx.Value()
		total += p
		ctx.SetValue(total)
		return receipts.Emit(ctx, ctx.Key(), fmt.Sprintf("%s bought %s for %d", name, product, p))
	})
	runProcessor(t, g, processorOpts(b, parts, t.TempDir())...)
	emitAll(t, newEmitter(t, "purchases", eo), "u1", "apple", "u2", "pear", "u1", "pear", "u1", "apple")

	spend := startView(t, "spend-table", codec.Int64(), viewOpts(b, parts)...)
	waitFor(t, 20*time.Second, func() error {
		for k, want := range map[string]int64{"u1": 11, "u2": 5} {
			got, err := spend.Get(k)
			if err != nil || got != want {
				return fmt.Errorf("spend of %s: %d (%v), want %d", k, got, err, want)
			}
		}
		return nil
	})
	// The receipts topic is an ordinary table-less stream; a view reads it
	// as latest-per-key, enough to see that outputs were written.
	rv := startView(t, "receipts", codec.String(), viewOpts(b, parts)...)
	waitFor(t, 20*time.Second, func() error {
		got, err := rv.Get("u2")
		if err != nil || got != "Grace bought pear for 5" {
			return fmt.Errorf("receipt of u2: %q (%v)", got, err)
		}
		return nil
	})
}

// A transfer debits the sender's row and, through the loopback, credits the
// receiver's row in whichever task owns it.
func TestLoopbackReachesTheTaskOwningTheDestinationKey(t *testing.T) {
	b := startBroker(t)
	const parts = 4
	g := sluice.DefineGroup[int64]("accounts")
	sluice.Persist(g, codec.Int64())
	credit := sluice.Loop(g, codec.Int64(), func(ctx *sluice.Context[int64], amount int64) error {
		balance, _ := ctx.Value()
		ctx.SetValue(balance + amount)
		return nil
	})
	sluice.Input(g, "transfers", codec.String(), func(ctx *sluice.Context[int64], transfer string) error {
		to, amountText, ok := strings.Cut(transfer, ":")
		if !ok {
			return fmt.Errorf("transfer %q: want to:amount", transfer)
		}
		amount, err := strconv.ParseInt(amountText, 10, 64)
		if err != nil {
			return err
		}
		balance, _ := ctx.Value()
		ctx.SetValue(balance - amount)
		return credit.Loopback(ctx, to, amount)
	})
	runProcessor(t, g, processorOpts(b, parts, t.TempDir())...)
	em := newEmitter(t, "transfers", emitterOpts(b, parts))
	want := map[string]int64{}
	for i := range 200 {
		from, to := fmt.Sprintf("acct-%d", i%7), fmt.Sprintf("acct-%d", (i*3+1)%7)
		want[from] -= int64(i)
		want[to] += int64(i)
		em.EmitAsync(from, fmt.Sprintf("%s:%d", to, i), nil)
	}
	if err := em.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	v := startView(t, "accounts-table", codec.Int64(), viewOpts(b, parts)...)
	waitFor(t, 20*time.Second, func() error {
		for k, n := range want {
			got, err := v.Get(k)
			if err != nil || got != n {
				return fmt.Errorf("balance of %s: %d (%v), want %d", k, got, err, n)
			}
		}
		return nil
	})
}

func TestGroupDefinitionErrorsNameTheEdge(t *testing.T) {
	g := sluice.DefineGroup[int64]("bad")
	noop := func(*sluice.Context[int64], string) error { return nil }
	sluice.Input(g, "in", codec.String(), noop)
	sluice.Input(g, "in", codec.String(), noop)
	sluice.Input(g, "", codec.String(), noop)
	sluice.Output(g, "in", codec.String())
	sluice.Persist(g, nil)
	_, err := sluice.NewProcessor(g)
	if err == nil {
		t.Fatal("NewProcessor accepted an invalid group")
	}
	for _, want := range []string{"group bad", "input in: topic is already the group's input", "input: topic name is empty", "output in: topic is already the group's input", "persist: codec is nil"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if err := sluice.DefineGroup[int64]("empty").Validate(); err == nil || !strings.Contains(err.Error(), "no inputs") {
		t.Errorf("a group without inputs: got %v, want an error about inputs", err)
	}
}

// Emitting to a topic the group did not declare fails the record.
func TestEmitToUndeclaredOutputFailsTheRecord(t *testing.T) {
	b := startBroker(t)
	other := sluice.DefineGroup[int64]("other")
	stray := sluice.Output(other, "stray", codec.String())

	g := sluice.DefineGroup[int64]("strict")
	sluice.Input(g, "in", codec.String(), func(ctx *sluice.Context[int64], v string) error {
		return stray.Emit(ctx, ctx.Key(), v)
	})
	emitAll(t, newEmitter(t, "in", emitterOpts(b, 2)), "k", "v")
	p, err := sluice.NewProcessor(g, processorOpts(b, 2, t.TempDir())...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = p.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "does not declare output stray") {
		t.Fatalf("run: got %v, want an error about the undeclared output", err)
	}
}

// A handler that reads a table in a group without one fails its record with
// an error that says how to fix it.
func TestValueWithoutPersistFailsTheRecord(t *testing.T) {
	b := startBroker(t)
	g := sluice.DefineGroup[int64]("stateless")
	sluice.Input(g, "in2", codec.String(), func(ctx *sluice.Context[int64], _ string) error {
		ctx.SetValue(1)
		return nil
	})
	emitAll(t, newEmitter(t, "in2", emitterOpts(b, 2)), "k", "v")
	p, err := sluice.NewProcessor(g, processorOpts(b, 2, t.TempDir())...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Run(ctx); err == nil || !strings.Contains(err.Error(), "declare one with Persist") {
		t.Fatalf("run: got %v, want an error pointing at Persist", err)
	}
}

func TestHandlerPanicStopsProcessorWithRecordLocation(t *testing.T) {
	b := startBroker(t)
	g := sluice.DefineGroup[int64]("panicky")
	sluice.Input(g, "in3", codec.String(), func(*sluice.Context[int64], string) error {
		panic("boom")
	})
	em := newEmitter(t, "in3", emitterOpts(b, 2))
	if err := em.EmitToPartition(context.Background(), 1, "k", "v"); err != nil {
		t.Fatal(err)
	}
	p, err := sluice.NewProcessor(g, processorOpts(b, 2, t.TempDir())...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = p.Run(ctx)
	var perr *sluice.PanicError
	if !errors.As(err, &perr) || perr.Value != "boom" || !strings.Contains(err.Error(), "in3/1@0") {
		t.Fatalf("run: got %v, want the recovered panic at in3/1@0", err)
	}
}
