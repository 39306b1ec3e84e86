package sluice

// What names a processor to Kafka: its static group membership and, exactly
// once, its transactional ID.
//
// Invariant: within one process, at most one running processor of a group
// has a given InstanceID. Two would take each other's place in the group,
// and exactly once fence each other's transactions, each making the other
// fail or abort over and over; Run refuses the second instead.

import (
	"crypto/rand"
	"fmt"
	"sync"
)

// instances are the (group, InstanceID) pairs of the processors running in
// this process.
var instances struct {
	mu    sync.Mutex
	inUse map[[2]string]bool
}

// claimInstance records that a processor of group runs with InstanceID id,
// and returns the function that forgets it; it fails if another processor
// of the group in this process has the id.
func claimInstance(group, id string) (release func(), err error) {
	key := [2]string{group, id}
	instances.mu.Lock()
	defer instances.mu.Unlock()
	if instances.inUse[key] {
		return nil, fmt.Errorf("group %s: instance id %q is already used by another processor of the group in this process; give each processor its own InstanceID", group, id)
	}
	if instances.inUse == nil {
		instances.inUse = make(map[[2]string]bool)
	}
	instances.inUse[key] = true
	return func() {
		instances.mu.Lock()
		defer instances.mu.Unlock()
		delete(instances.inUse, key)
	}, nil
}

// transactionalID names a processor's transactional producer. With an
// InstanceID it is the same on every run of the instance, "<group>-<id>":
// a restarted processor then fences the transaction its crashed
// predecessor left open, which the broker aborts at once, instead of
// waiting for it to time out. Without one it is random, so that processors
// of one group never fence each other; a crashed processor's open
// transaction then stays open until the transaction timeout, and the
// broker keeps its producer ID until the ID expires.
func transactionalID(group, instanceID string) string {
	if instanceID != "" {
		return group + "-" + instanceID
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%x", group, b)
}
