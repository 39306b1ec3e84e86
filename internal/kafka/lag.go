package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
)

// GroupLag describes group with its lag per partition, as kadm computes it
// (Client.Lag): the end offset minus the committed offset or, before the
// group's first commit to a partition, minus the partition's start offset;
// never below 0. Processors and the CLI both measure lag with it. A group
// that does not exist is an error.
func GroupLag(ctx context.Context, adm *kadm.Client, group string) (kadm.DescribedGroupLag, error) {
	lags, err := adm.Lag(ctx, group)
	if err != nil {
		return kadm.DescribedGroupLag{}, fmt.Errorf("describe group %s: %w", group, err)
	}
	l, ok := lags[group]
	if !ok {
		return l, fmt.Errorf("group %s: no answer from the brokers", group)
	}
	if err := l.Error(); err != nil {
		return l, fmt.Errorf("describe group %s: %w", group, err)
	}
	if l.State == "Dead" || (len(l.Members) == 0 && len(l.Lag) == 0) {
		return l, fmt.Errorf("group %s does not exist (no members, no committed offsets)", group)
	}
	return l, nil
}
