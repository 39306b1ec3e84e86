package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// result is what one run of one side measured.
type result struct {
	name    string
	n       int           // records or rows
	elapsed time.Duration // from starting the child to the end of its work
	cpu     int64         // the child's user and system CPU time, ns
	hwmKiB  int64         // the child's peak resident memory
	rows    int64         // rows a restore side held
	note    string        // what a check found wrong, if anything
}

func (r result) rate() float64      { return float64(r.n) / r.elapsed.Seconds() }
func (r result) cpuPerRec() float64 { return float64(r.cpu) / float64(r.n) }
func (r result) mib() float64       { return float64(r.hwmKiB) / 1024 }

func (r result) String() string {
	s := fmt.Sprintf("%s: %.0f rec/s, %.0f cpu-ns/rec, peak RSS %.0f MiB (%v)", r.name, r.rate(), r.cpuPerRec(), r.mib(), r.elapsed.Round(time.Millisecond))
	if r.note != "" {
		s += "; " + r.note
	}
	return s
}

// round is the results of every side in one round.
type round struct {
	count, restore []result
}

// printTables writes a Markdown table of every round's results, each side
// with its ratios to the raw client of the same round, and the ratios of
// sluice to goka.
func printTables(w io.Writer, n int, rounds []round) {
	fmt.Fprintf(w, "\n### Count group, %d records\n\n", n)
	fmt.Fprintln(w, "| round | side | rec/s | ratio to raw | cpu-ns/rec | cpu ratio to raw | peak RSS MiB |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|")
	for i, rd := range rounds {
		table(w, i+1, rd.count, "raw")
	}
	fmt.Fprintln(w)
	for i, rd := range rounds {
		versus(w, i+1, rd.count, "sluice", "goka-leveldb", "goka-memory")
	}
	fmt.Fprintf(w, "\n### Restore of a table of %d rows into an empty store\n\n", n)
	fmt.Fprintln(w, "| round | side | rows/s | ratio to raw | cpu-ns/row | cpu ratio to raw | peak RSS MiB |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|")
	for i, rd := range rounds {
		table(w, i+1, rd.restore, "restore-raw")
	}
	fmt.Fprintln(w)
	for i, rd := range rounds {
		versus(w, i+1, rd.restore, "restore-sluice-pebble", "restore-goka-leveldb", "restore-goka-memory")
		versus(w, i+1, rd.restore, "restore-sluice-memory", "restore-goka-memory")
	}
}

func find(rs []result, name string) (result, bool) {
	for _, r := range rs {
		if r.name == name {
			return r, true
		}
	}
	return result{}, false
}

func table(w io.Writer, round int, rs []result, base string) {
	b, haveBase := find(rs, base)
	for _, r := range rs {
		ratio, cpuRatio := "", ""
		if haveBase {
			ratio = fmt.Sprintf("%.3f", r.rate()/b.rate())
			cpuRatio = fmt.Sprintf("%.2f", r.cpuPerRec()/b.cpuPerRec())
		}
		name := r.name
		if r.note != "" {
			name += " (" + r.note + ")"
		}
		fmt.Fprintf(w, "| %d | %s | %.0f | %s | %.0f | %s | %.0f |\n", round, name, r.rate(), ratio, r.cpuPerRec(), cpuRatio, r.mib())
	}
}

// versus writes one line comparing side a with each of the others: its
// throughput as a multiple of theirs, and its peak RSS as a fraction.
func versus(w io.Writer, round int, rs []result, a string, others ...string) {
	x, ok := find(rs, a)
	if !ok {
		return
	}
	var parts []string
	for _, o := range others {
		y, ok := find(rs, o)
		if !ok {
			continue
		}
		parts = append(parts, fmt.Sprintf("%.1f× the throughput of %s at %.0f%% of its CPU per record and %.2f× its peak RSS",
			x.rate()/y.rate(), o, 100*x.cpuPerRec()/y.cpuPerRec(), x.mib()/y.mib()))
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "- round %d: %s: %s\n", round, a, strings.Join(parts, "; "))
	}
}
