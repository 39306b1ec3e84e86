package sluice_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/broker"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/internal/kafka"
)

// These tests check sluice against librdkafka, through kcat: what one writes
// the other reads, and keys land on the partitions murmur2 predicts in both.

// requireKcat skips the test when kcat is not installed.
func requireKcat(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat not installed; .ci/run installs it")
	}
}

// runKcat runs kcat against b with stdin as its input and returns its output.
func runKcat(t *testing.T, b *broker.Broker, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	args = append([]string{"-b", b.Addrs()[0], "-q"}, args...)
	cmd := exec.CommandContext(ctx, "kcat", args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// kcatProduce writes "key:value" lines to topic with librdkafka's murmur2
// partitioner, the Java client's default for keyed records. With tombstones,
// an empty value is written as a null one.
func kcatProduce(t *testing.T, b *broker.Broker, topic string, tombstones bool, lines ...string) {
	t.Helper()
	args := []string{"-P", "-t", topic, "-K:", "-X", "partitioner=murmur2_random"}
	if tombstones {
		args = append(args, "-Z")
	}
	runKcat(t, b, strings.Join(lines, "\n")+"\n", args...)
}

// kcatRecord is a record as kcat printed it.
type kcatRecord struct {
	key, value string
	partition  int32
}

// kcatConsume reads topic from the beginning to its end with kcat, in
// offset order within each partition.
func kcatConsume(t *testing.T, b *broker.Broker, topic string) []kcatRecord {
	t.Helper()
	out := runKcat(t, b, "", "-C", "-t", topic, "-e", "-o", "beginning", "-f", `%k\t%s\t%p\n`)
	var records []kcatRecord
	for line := range strings.Lines(out) {
		fields := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		if len(fields) != 3 {
			t.Fatalf("kcat printed %q, want key, value and partition", line)
		}
		p, err := strconv.ParseInt(fields[2], 10, 32)
		if err != nil {
			t.Fatalf("kcat printed partition %q: %v", fields[2], err)
		}
		records = append(records, kcatRecord{key: fields[0], value: fields[1], partition: int32(p)})
	}
	return records
}

// keyPartitions returns the partition of each key, failing if a key is on
// more than one.
func keyPartitions(t *testing.T, topic string, records []kcatRecord) map[string]int32 {
	t.Helper()
	parts := make(map[string]int32)
	for _, r := range records {
		if p, ok := parts[r.key]; ok && p != r.partition {
			t.Fatalf("%s: key %s is on partitions %d and %d", topic, r.key, p, r.partition)
		}
		parts[r.key] = r.partition
	}
	return parts
}

func TestKcatReadsWhatSluiceWrote(t *testing.T) {
	requireKcat(t)
	b := startBroker(t)
	const parts = 4
	em := newStringEmitter(t, b, "page-views", parts)
	// Key i gets i+1 views, so every key has its own count.
	want := make(map[string]int64)
	var sent []kcatRecord
	ctx := context.Background()
	for i := range 8 {
		key := fmt.Sprintf("user-%d", i)
		for j := range i + 1 {
			val := fmt.Sprintf("/page/%d", j)
			if err := em.Emit(ctx, key, val); err != nil {
				t.Fatal(err)
			}
			want[key]++
			sent = append(sent, kcatRecord{key: key, value: val, partition: kafka.KeyPartition([]byte(key), parts)})
		}
	}
	g := defineCounter("page-counter", "page-views")
	runProcessor(t, g, processorOpts(b, parts, t.TempDir())...)
	v := startView(t, g.TableTopic(), codec.JSON[counter](), viewOpts(b, parts)...)
	expectCounts(t, v, want, 30*time.Second)

	// The input: every record, with its key and value, on murmur2's partition.
	got := kcatConsume(t, b, "page-views")
	cmp := func(a, b kcatRecord) int {
		return strings.Compare(fmt.Sprint(a.key, a.value, a.partition), fmt.Sprint(b.key, b.value, b.partition))
	}
	slices.SortFunc(got, cmp)
	slices.SortFunc(sent, cmp)
	if !slices.Equal(got, sent) {
		t.Errorf("kcat read from page-views\n%v\nwant\n%v", got, sent)
	}
	inputParts := keyPartitions(t, "page-views", got)

	// The table: per key, counts that only grow, ending at the key's count,
	// on the partition its input records are on.
	rows := kcatConsume(t, b, g.TableTopic())
	last := make(map[string]int64)
	for _, r := range rows {
		var n int64
		if _, err := fmt.Sscanf(r.value, `{"Count":%d}`, &n); err != nil || r.value != fmt.Sprintf(`{"Count":%d}`, n) {
			t.Fatalf("table row %s=%q is not {\"Count\":N}", r.key, r.value)
		}
		if n <= last[r.key] {
			t.Errorf("table row %s=%s after count %d", r.key, r.value, last[r.key])
		}
		last[r.key] = n
		if r.partition != inputParts[r.key] {
			t.Errorf("table row of %s on partition %d, its input on %d", r.key, r.partition, inputParts[r.key])
		}
	}
	for key, n := range want {
		if last[key] != n {
			t.Errorf("kcat's last table row of %s has count %d, want %d", key, last[key], n)
		}
	}
	if len(last) != len(want) {
		t.Errorf("table has rows of %d keys, want %d", len(last), len(want))
	}
}

func TestSluiceReadsWhatKcatWrote(t *testing.T) {
	requireKcat(t)
	b := startBroker(t)
	const parts = 6
	probe := newTopicProbe(t, b)
	probe.create("orders", parts, false)

	want := make(map[string]int64)
	var lines []string
	for i := range 60 {
		key := fmt.Sprintf("customer-%d", i%20)
		want[key]++
		lines = append(lines, fmt.Sprintf("%s:order-%d", key, i))
	}
	kcatProduce(t, b, "orders", false, lines...)

	g := defineCounter("order-counter", "orders")
	runProcessor(t, g, processorOpts(b, parts, t.TempDir())...)
	v := startView(t, g.TableTopic(), codec.JSON[counter](), viewOpts(b, parts)...)
	expectCounts(t, v, want, 30*time.Second)

	// The same keys written by sluice to another topic of as many
	// partitions land on the same partitions as librdkafka put them.
	em := newStringEmitter(t, b, "orders-by-sluice", parts)
	for key := range want {
		if err := em.Emit(context.Background(), key, "x"); err != nil {
			t.Fatal(err)
		}
	}
	byKcat := keyPartitions(t, "orders", kcatConsume(t, b, "orders"))
	bySluice := make(map[string]int32)
	for _, r := range probe.readAll("orders-by-sluice") {
		bySluice[string(r.Key)] = r.Partition
	}
	if len(byKcat) != len(want) || len(bySluice) != len(want) {
		t.Fatalf("kcat's topic has %d keys and sluice's %d, want %d", len(byKcat), len(bySluice), len(want))
	}
	used := make(map[int32]bool)
	for key, p := range byKcat {
		used[p] = true
		if bySluice[key] != p {
			t.Errorf("key %s: librdkafka put it on partition %d, sluice on %d", key, p, bySluice[key])
		}
		if kp := kafka.KeyPartition([]byte(key), parts); kp != p {
			t.Errorf("key %s: librdkafka put it on partition %d, KeyPartition says %d", key, p, kp)
		}
	}
	if len(used) < 2 {
		t.Fatalf("all keys on partitions %v: the comparison proves nothing", used)
	}
}

func TestViewGetsRowsKcatWroteToCompactedTable(t *testing.T) {
	requireKcat(t)
	b := startBroker(t)
	const parts = 6
	newTopicProbe(t, b).create("prices", parts, true)
	want := make(map[string]string)
	var lines []string
	for i := range 30 {
		key, val := fmt.Sprintf("sku-%d", i), strconv.Itoa(100+i)
		want[key] = val
		lines = append(lines, key+":"+val)
	}
	// Updates: the latest row of a key wins.
	for i := range 5 {
		key, val := fmt.Sprintf("sku-%d", i), strconv.Itoa(900+i)
		want[key] = val
		lines = append(lines, key+":"+val)
	}
	kcatProduce(t, b, "prices", false, lines...)

	v := startView(t, "prices", codec.String(), viewOpts(b, parts)...)
	for key, val := range want {
		got, err := v.Get(key)
		if err != nil {
			t.Fatalf("restored view: get %s: %v", key, err)
		}
		if got != val {
			t.Errorf("restored view: %s = %q, want %q", key, got, val)
		}
	}

	// Rows kcat writes while the view runs are followed, deletes included.
	kcatProduce(t, b, "prices", true, "sku-7:777", "sku-8:", "sku-new:1")
	want["sku-7"], want["sku-new"] = "777", "1"
	delete(want, "sku-8")
	waitFor(t, 10*time.Second, func() error {
		for key, val := range want {
			got, err := v.Get(key)
			if err != nil {
				return fmt.Errorf("get %s: %w", key, err)
			}
			if got != val {
				return fmt.Errorf("%s = %q, want %q", key, got, val)
			}
		}
		if _, err := v.Get("sku-8"); !errors.Is(err, sluice.ErrNotFound) {
			return fmt.Errorf("get of sku-8 after kcat deleted it: %v, want ErrNotFound", err)
		}
		return nil
	})
}
