package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/broker"
)

// runTimeout bounds one side's run.
const runTimeout = 10 * time.Minute

// verbose passes the children's standard error through.
var verbose bool

func main() {
	records := flag.Int("records", 1_000_000, "input records of the count group and rows of the restored table")
	runs := flag.Int("runs", 2, "rounds of all sides, run one after another")
	only := flag.String("sides", "", "comma-separated sides to run (default all of "+strings.Join(append(slices.Clone(countSides), restoreSides...), ",")+" but "+strings.Join(notByDefault, ",")+")")
	childSide := flag.String("child", "", "run this side as a child process (used by the parent)")
	brokers := flag.String("brokers", "", "broker addresses of a child")
	dir := flag.String("dir", "", "state dir of a child")
	flag.BoolVar(&verbose, "v", false, "pass what the children write to standard error through")
	flag.Parse()
	if *childSide != "" {
		if err := runChild(*childSide, strings.Split(*brokers, ","), *dir, *records); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", *childSide, err)
			os.Exit(1)
		}
		return
	}
	var chosen []string
	if *only != "" {
		chosen = strings.Split(*only, ",")
		for _, s := range chosen {
			if _, ok := sides[s]; !ok {
				fmt.Fprintf(os.Stderr, "no side %q\n", s)
				os.Exit(2)
			}
		}
	}
	if err := runAll(*records, *runs, chosen); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// runAll runs every chosen side once per round, the count sides first, each
// on a broker of its own filled with the same input, then the restore sides
// on one broker holding the table, which none of them writes. Every other
// round runs the sides in the reverse order, so that no side always runs
// first or last on a machine whose load drifts.
func runAll(n, runs int, chosen []string) error {
	pick := func(all []string) []string {
		var s []string
		for _, name := range all {
			if chosen == nil && !slices.Contains(notByDefault, name) || slices.Contains(chosen, name) {
				s = append(s, name)
			}
		}
		return s
	}
	count, restore := pick(countSides), pick(restoreSides)
	var all []round
	for r := range runs {
		if r%2 == 1 {
			count, restore = reversed(count), reversed(restore)
		}
		var rd round
		for _, name := range count {
			res, err := countRun(name, n)
			if err != nil {
				return fmt.Errorf("round %d: %w", r+1, err)
			}
			fmt.Printf("round %d %s\n", r+1, res)
			rd.count = append(rd.count, res)
		}
		if len(restore) > 0 {
			res, err := restoreRun(restore, n)
			if err != nil {
				return fmt.Errorf("round %d: %w", r+1, err)
			}
			rd.restore = res
		}
		all = append(all, rd)
	}
	printTables(os.Stdout, n, all)
	return nil
}

func reversed(s []string) []string {
	s = slices.Clone(s)
	slices.Reverse(s)
	return s
}

// startBroker starts an in-memory embedded broker in this process, with
// compaction put off, as in sluice's bench package: the broker compacts
// inside its request loop, which would stall whichever side ran then.
func startBroker() (*broker.Broker, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	br, err := broker.Start(ctx, broker.CompactionInterval(24*time.Hour))
	if err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	return br, nil
}

// countRun runs count side name on a fresh broker filled with the n input
// records and checks that its output holds a count for each of them.
func countRun(name string, n int) (result, error) {
	br, err := startBroker()
	if err != nil {
		return result{}, err
	}
	defer br.Close()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	if err := fillInput(ctx, br.Addrs(), n, outputOf(name)); err != nil {
		return result{}, fmt.Errorf("%s: %w", name, err)
	}
	res, err := runSide(ctx, br.Addrs(), name, n, func(ctx context.Context) error {
		return waitCommitted(ctx, br.Addrs(), groupOf[name], int64(n))
	})
	if err != nil {
		return res, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(br.Addrs()...))
	if err != nil {
		return res, err
	}
	defer cl.Close()
	out, err := endOffsets(ctx, kadm.NewClient(cl), outputOf(name))
	if err != nil {
		return res, fmt.Errorf("%s: %w", name, err)
	}
	if out != int64(n) {
		res.note = fmt.Sprintf("output holds %d records, not %d", out, n)
	}
	return res, nil
}

// restoreRun runs the restore sides, in turn, on one broker holding the
// table of n rows, and checks that each holds n rows when done.
func restoreRun(names []string, n int) ([]result, error) {
	br, err := startBroker()
	if err != nil {
		return nil, err
	}
	defer br.Close()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	if err := fillTable(ctx, br.Addrs(), n); err != nil {
		return nil, err
	}
	var all []result
	for _, name := range names {
		res, err := runSide(ctx, br.Addrs(), name, n, nil)
		if err != nil {
			return all, err
		}
		if res.rows != int64(n) {
			return all, fmt.Errorf("%s: holds %d rows, want %d", name, res.rows, n)
		}
		fmt.Println(res)
		all = append(all, res)
	}
	return all, nil
}

// waitCommitted polls, every 10ms, the offsets group has committed until
// they add up to n.
func waitCommitted(ctx context.Context, addrs []string, group string, n int64) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var committed int64
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s committed %d of %d records: %w", group, committed, n, ctx.Err())
		case <-tick.C:
		}
		offsets, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			continue // the group may not exist yet
		}
		committed = 0
		for _, o := range offsets[inputTopic] {
			committed += o.At
		}
		if committed >= n {
			return nil
		}
	}
}

// runSide runs side name in a child process of this program, with an empty
// state dir, and times it from starting the process to the end of its work:
// the child's "done" line for a self-ending side, or, for the others, the
// moment finished returns, after which the child is sent SIGTERM.
func runSide(ctx context.Context, addrs []string, name string, n int, finished func(context.Context) error) (result, error) {
	res := result{name: name, n: n}
	exe, err := os.Executable()
	if err != nil {
		return res, err
	}
	dir, err := os.MkdirTemp("", "peers-"+name+"-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command(exe, "-child", name, "-brokers", strings.Join(addrs, ","), "-dir", dir, "-records", fmt.Sprint(n))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if verbose {
		cmd.Stderr = io.MultiWriter(&stderr, os.Stderr)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	type line struct {
		text string
		at   time.Time
	}
	lines := make(chan line, 8)
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("%s: start: %w", name, err)
	}
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- line{sc.Text(), time.Now()}
		}
	}()
	fail := func(err error) (result, error) {
		_ = cmd.Process.Kill()
		for range lines {
		}
		_ = cmd.Wait()
		return res, fmt.Errorf("%s: %w\n%s", name, err, stderr.String())
	}
	if !sides[name].selfEnding {
		watchCtx, stopWatch := context.WithCancel(ctx)
		defer stopWatch()
		watched := make(chan error, 1)
		go func() { watched <- finished(watchCtx) }()
		select {
		case err := <-watched:
			if err != nil {
				return fail(err)
			}
			res.elapsed = time.Since(begin)
		case l, ok := <-lines:
			// The child spoke or ended before its work was seen
			// to be done: it failed.
			stopWatch()
			if ok {
				return fail(fmt.Errorf("child reported %q before its commits were complete", l.text))
			}
			return fail(errors.New("child ended before its commits were complete"))
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			return fail(err)
		}
	}
	var done bool
	for l := range lines {
		switch {
		case strings.HasPrefix(l.text, "done "):
			if _, err := fmt.Sscanf(l.text, "done cpu-ns=%d hwm-kib=%d", &res.cpu, &res.hwmKiB); err != nil {
				return fail(fmt.Errorf("report %q: %w", l.text, err))
			}
			done = true
			if sides[name].selfEnding {
				res.elapsed = l.at.Sub(begin)
			}
		case strings.HasPrefix(l.text, "rows "):
			if _, err := fmt.Sscanf(l.text, "rows %d", &res.rows); err != nil {
				return fail(fmt.Errorf("report %q: %w", l.text, err))
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		return res, fmt.Errorf("%s: %w\n%s", name, err, stderr.String())
	}
	if !done {
		return res, fmt.Errorf("%s: child reported no figures\n%s", name, stderr.String())
	}
	return res, nil
}
