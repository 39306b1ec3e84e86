package main

// The child process of one side: it runs the side against the parent's
// broker and reports, on its standard output, the line
//
//	done cpu-ns=<user+system CPU of this process> hwm-kib=<VmHWM>
//
// once its work is done (a self-ending side) or when the parent tells it
// the work is done with SIGTERM (a count side, whose commits the parent
// watches), then stops the side and reports "rows <n>", the rows a restore
// side holds. CPU time and peak memory are taken before the side stops, so
// its shutdown does not count.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

var doneOnce sync.Once

// markDone reports this process's CPU time and peak resident memory, the
// first time it is called.
func markDone() {
	doneOnce.Do(func() {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			fmt.Fprintf(os.Stderr, "getrusage: %v\n", err)
			os.Exit(1)
		}
		cpu := syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)
		hwm, err := peakRSS()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("done cpu-ns=%d hwm-kib=%d\n", cpu, hwm)
	})
}

// runChild runs side name over n records on the broker at addrs, with dir
// as its empty state dir.
func runChild(name string, addrs []string, dir string, n int) error {
	s, ok := sides[name]
	if !ok {
		return fmt.Errorf("no side %q", name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		<-sig
		markDone()
		cancel()
	}()
	rows, err := s.run(ctx, addrs, dir, n)
	if err != nil && !(errors.Is(err, context.Canceled) && !s.selfEnding) {
		return err
	}
	markDone()
	fmt.Printf("rows %d\n", rows)
	return nil
}

// peakRSS returns the peak resident memory of this process in KiB: VmHWM in
// /proc/self/status.
func peakRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("peak rss: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if s, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(s), " kB"), 10, 64)
		}
	}
	return 0, errors.New("peak rss: no VmHWM in /proc/self/status")
}
