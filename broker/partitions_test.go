package broker

import (
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A topic of two billion partitions made the broker allocate for each of
// them until the machine killed it.
func TestBrokerRefusesMorePartitionsThanItCanHold(t *testing.T) {
	b, err := Start(t.Context())
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	cl := newClient(t, b)
	adm := kadm.NewClient(cl)

	resp, err := adm.CreateTopic(t.Context(), 1<<31-1, 1, nil, "huge")
	if err == nil {
		err = resp.Err
	}
	if !errors.Is(err, kerr.InvalidPartitions) || !strings.Contains(resp.ErrMessage, "10000") {
		t.Fatalf("create with 2^31-1 partitions: %v (%q), want INVALID_PARTITIONS naming the limit", err, resp.ErrMessage)
	}
	if resp, err := adm.CreateTopic(t.Context(), MaxPartitions, 1, nil, "wide"); err != nil || resp.Err != nil {
		t.Fatalf("create with %d partitions: %v, %v", MaxPartitions, err, resp.Err)
	}
	if resp, err := adm.CreateTopic(t.Context(), 2, 1, nil, "grows"); err != nil || resp.Err != nil {
		t.Fatalf("create: %v, %v", err, resp.Err)
	}

	// Adding partitions is held to the same limit.
	req := kmsg.NewPtrCreatePartitionsRequest()
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = "grows", 1<<31-1
	req.Topics = append(req.Topics, rt)
	presp, err := req.RequestWith(t.Context(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(presp.Topics) != 1 || presp.Topics[0].ErrorCode != kerr.InvalidPartitions.Code {
		t.Fatalf("add partitions up to 2^31-1: %+v, want INVALID_PARTITIONS", presp.Topics)
	}
	if m := presp.Topics[0].ErrorMessage; m == nil || !strings.Contains(*m, "10000") {
		t.Errorf("add partitions: message %v, want one naming the limit", m)
	}
	topics, err := adm.ListTopics(t.Context(), "grows")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(topics["grows"].Partitions); n != 2 {
		t.Errorf("grows has %d partitions after the refused request, want 2", n)
	}
	if _, err := adm.CreatePartitions(t.Context(), 3, "grows"); err != nil {
		t.Errorf("add 3 partitions: %v", err)
	}
}

func TestBrokerRefusesADefaultPartitionCountBeyondItsLimit(t *testing.T) {
	if b, err := Start(t.Context(), Partitions(MaxPartitions+1)); err == nil {
		_ = b.Close()
		t.Fatal("started with a default of more partitions than a topic can have")
	}
}
