package sluice

// Lookup tables are copied once per process: processors of one group that
// share a process share the copy of each table they look up, however many
// there are and whether or not they share a state directory.
//
// Invariants:
//   - A copy is known by the store name of its group's lookup and the
//     brokers it reads from; it runs while at least one processor holds it,
//     on a context of its own, so that the processor that started it may
//     stop before the others.
//   - A copy leaves lookupCopies only once its run has returned and closed
//     its stores. A processor that asks for the table meanwhile waits for
//     that, so a copy never opens a store the one before it still holds.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

type lookupKey struct {
	store   string
	brokers string
}

type lookupCopy struct {
	tv     *tableView
	refs   int
	cancel context.CancelFunc
	done   chan struct{} // closed once run returned and the copy left lookupCopies
}

var lookupCopies = struct {
	mu     sync.Mutex
	copies map[lookupKey]*lookupCopy
}{copies: make(map[lookupKey]*lookupCopy)}

// lookupStoreName is the store name of group's copy of table.
func lookupStoreName(group, table string) string { return group + "." + table + ".lookup" }

// acquireLookup returns the process's copy of table for group, starting it
// with cfg if there is none, and the function that gives it back. The copy
// stops when the last holder gives it back; release then waits until its
// stores are closed.
func acquireLookup(group, table string, cfg viewConfig) (tv *tableView, release func()) {
	key := lookupKey{store: lookupStoreName(group, table), brokers: strings.Join(slices.Sorted(slices.Values(cfg.client.brokers)), ",")}
	for {
		lookupCopies.mu.Lock()
		c, ok := lookupCopies.copies[key]
		if ok && c.refs == 0 {
			// Stopping: wait until its stores are closed.
			lookupCopies.mu.Unlock()
			<-c.done
			continue
		}
		if !ok {
			c = startLookupCopy(key, table, cfg)
			lookupCopies.copies[key] = c
		}
		c.refs++
		lookupCopies.mu.Unlock()
		var once sync.Once
		return c.tv, func() { once.Do(func() { releaseLookup(c) }) }
	}
}

// startLookupCopy starts a copy; lookupCopies.mu is held.
func startLookupCopy(key lookupKey, table string, cfg viewConfig) *lookupCopy {
	tv := newTableView(table, cfg)
	tv.name = key.store
	ctx, cancel := context.WithCancel(context.Background())
	c := &lookupCopy{tv: tv, cancel: cancel, done: make(chan struct{})}
	go func() {
		// A failure reaches the holders through tv; the next to ask for
		// the table gets a new copy.
		_ = tv.run(ctx)
		cancel()
		lookupCopies.mu.Lock()
		if lookupCopies.copies[key] == c {
			delete(lookupCopies.copies, key)
		}
		lookupCopies.mu.Unlock()
		close(c.done)
	}()
	return c
}

func releaseLookup(c *lookupCopy) {
	lookupCopies.mu.Lock()
	c.refs--
	last := c.refs == 0
	lookupCopies.mu.Unlock()
	if last {
		c.cancel()
		<-c.done
	}
}

// holdLookup holds a processor's copy of a lookup table until ctx is done,
// then gives it back; it returns the error that stopped the copy before.
func holdLookup(ctx context.Context, tv *tableView, release func()) error {
	defer release()
	select {
	case <-ctx.Done():
		return nil
	case <-tv.stopped:
		if e := tv.runErr.Load(); e != nil {
			return *e
		}
		return fmt.Errorf("view %s stopped", tv.topic)
	}
}
