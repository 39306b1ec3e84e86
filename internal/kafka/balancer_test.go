package kafka

import (
	"fmt"
	"slices"
	"sort"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// These tests drive the balancer through the interfaces the kgo client uses
// on the group leader: JoinGroupMetadata encodes what each member sends,
// MemberBalancer and BalanceOrError compute the plan, and
// ParseSyncAssignment decodes what each member receives.

// groupTopics are the topics of a group with one input, a loopback and a
// table, all co-partitioned.
func groupTopics(n int32) map[string]int32 {
	return map[string]int32{"clicks": n, "clicks-loop": n, "clicks-table": n}
}

// member is one member of a join round: what it subscribes to, what it
// claims to own and the generation its claim is from.
type member struct {
	id         string
	owned      []int32 // partition numbers owned of every subscribed topic
	generation int32
}

// balanceRound runs one rebalance as the group leader would and returns
// each member's assignment as topic => partitions.
func balanceRound(t *testing.T, topics map[string]int32, members ...member) map[string]map[string][]int32 {
	t.Helper()
	names := make([]string, 0, len(topics))
	for topic := range topics {
		names = append(names, topic)
	}
	sort.Strings(names)
	b := CopartitionBalancer(nil)
	join := make([]kmsg.JoinGroupResponseMember, len(members))
	for i, m := range members {
		var current map[string][]int32
		if len(m.owned) > 0 {
			current = make(map[string][]int32)
			for _, topic := range names {
				current[topic] = slices.Clone(m.owned)
			}
		}
		join[i] = kmsg.JoinGroupResponseMember{
			MemberID:         m.id,
			ProtocolMetadata: b.JoinGroupMetadata(names, current, m.generation),
		}
	}
	mb, interests, err := b.MemberBalancer(join)
	if err != nil {
		t.Fatalf("member balancer: %v", err)
	}
	for _, topic := range names {
		if _, ok := interests[topic]; !ok {
			t.Fatalf("member balancer does not report interest in %s: %v", topic, interests)
		}
	}
	withErr, ok := mb.(kgo.GroupMemberBalancerOrError)
	if !ok {
		t.Fatalf("member balancer %T does not implement kgo.GroupMemberBalancerOrError", mb)
	}
	into, err := withErr.BalanceOrError(topics)
	if err != nil {
		t.Fatalf("balance: %v", err)
	}
	got := make(map[string]map[string][]int32)
	for _, a := range into.IntoSyncAssignment() {
		parsed, err := b.ParseSyncAssignment(a.MemberAssignment)
		if err != nil {
			t.Fatalf("parse assignment of %s: %v", a.MemberID, err)
		}
		got[a.MemberID] = parsed
	}
	return got
}

// numbers checks that a member holds the same partition numbers of every
// topic, as a task joins partition p of all of them, and returns them.
func numbers(t *testing.T, id string, topics map[string]int32, assigned map[string][]int32) []int32 {
	t.Helper()
	var nums []int32
	first := true
	for topic := range topics {
		ps := slices.Sorted(slices.Values(assigned[topic]))
		if first {
			nums, first = ps, false
			continue
		}
		if !slices.Equal(ps, nums) {
			t.Fatalf("member %s is not co-partitioned: %v", id, assigned)
		}
	}
	for topic := range assigned {
		if _, ok := topics[topic]; !ok {
			t.Fatalf("member %s is assigned topic %s it did not ask for", id, topic)
		}
	}
	return nums
}

// assignedNumbers returns the partition numbers of each member and checks
// that no number is assigned twice.
func assignedNumbers(t *testing.T, topics map[string]int32, plan map[string]map[string][]int32) map[string][]int32 {
	t.Helper()
	byMember := make(map[string][]int32)
	seen := make(map[int32]string)
	for id, assigned := range plan {
		nums := numbers(t, id, topics, assigned)
		for _, p := range nums {
			if other, dup := seen[p]; dup {
				t.Fatalf("partition %d assigned to both %s and %s", p, other, id)
			}
			seen[p] = id
		}
		byMember[id] = nums
	}
	return byMember
}

func span(from, to int32) []int32 {
	var ps []int32
	for p := from; p < to; p++ {
		ps = append(ps, p)
	}
	return ps
}

func TestBalancerGivesSoleMemberEveryPartitionOfEveryTopic(t *testing.T) {
	topics := groupTopics(10)
	got := assignedNumbers(t, topics, balanceRound(t, topics, member{id: "a", generation: -1}))
	if want := span(0, 10); !slices.Equal(got["a"], want) {
		t.Fatalf("sole member got %v, want %v", got["a"], want)
	}
}

func TestBalancerSplitsNewMembersEvenlyWithSameNumbersOfEveryTopic(t *testing.T) {
	topics := groupTopics(10)
	got := assignedNumbers(t, topics, balanceRound(t, topics,
		member{id: "a", generation: -1}, member{id: "b", generation: -1}))
	if len(got["a"]) != 5 || len(got["b"]) != 5 {
		t.Fatalf("two new members got %v and %v, want 5 each", got["a"], got["b"])
	}
	if all := slices.Sorted(slices.Values(append(slices.Clone(got["a"]), got["b"]...))); !slices.Equal(all, span(0, 10)) {
		t.Fatalf("assigned %v, want every partition 0-9 once", all)
	}
}

func TestBalancerSpreadsSevenPartitionsOverThreeMembersThreeTwoTwo(t *testing.T) {
	topics := groupTopics(7)
	got := assignedNumbers(t, topics, balanceRound(t, topics,
		member{id: "a", generation: -1}, member{id: "b", generation: -1}, member{id: "c", generation: -1}))
	var counts []int
	var all []int32
	for _, nums := range got {
		counts = append(counts, len(nums))
		all = append(all, nums...)
	}
	slices.Sort(counts)
	if !slices.Equal(counts, []int{2, 2, 3}) {
		t.Fatalf("counts %v (%v), want 3/2/2", counts, got)
	}
	if slices.Sort(all); !slices.Equal(all, span(0, 7)) {
		t.Fatalf("assigned %v, want every partition 0-6 once", all)
	}
}

func TestBalancerKeepsOwnedPartitionsWhenThirdMemberJoins(t *testing.T) {
	topics := groupTopics(10)
	// Round 1: a owned 0-4 and b 5-9 in generation 1; c is new.
	round1 := assignedNumbers(t, topics, balanceRound(t, topics,
		member{id: "a", owned: span(0, 5), generation: 1},
		member{id: "b", owned: span(5, 10), generation: 1},
		member{id: "c", generation: -1},
	))
	// Fair shares are 4/3/3: a and b keep all but what c needs, and what c
	// needs is assigned to nobody until its owner has revoked it.
	if len(round1["a"])+len(round1["b"]) != 7 || len(round1["a"]) < 3 || len(round1["b"]) < 3 {
		t.Fatalf("round 1: a kept %v and b kept %v; want 7 kept, 4/3", round1["a"], round1["b"])
	}
	for _, p := range round1["a"] {
		if p >= 5 {
			t.Fatalf("round 1: a was given %d, which it did not own: %v", p, round1["a"])
		}
	}
	for _, p := range round1["b"] {
		if p < 5 {
			t.Fatalf("round 1: b was given %d, which it did not own: %v", p, round1["b"])
		}
	}
	if len(round1["c"]) != 0 {
		t.Fatalf("round 1: c was given %v while their owners still hold them", round1["c"])
	}

	// Round 2: a and b have revoked what they lost and claim what they kept.
	round2 := assignedNumbers(t, topics, balanceRound(t, topics,
		member{id: "a", owned: round1["a"], generation: 2},
		member{id: "b", owned: round1["b"], generation: 2},
		member{id: "c", generation: 2},
	))
	if !slices.Equal(round2["a"], round1["a"]) || !slices.Equal(round2["b"], round1["b"]) {
		t.Fatalf("round 2 moved kept partitions: a %v -> %v, b %v -> %v", round1["a"], round2["a"], round1["b"], round2["b"])
	}
	counts := []int{len(round2["a"]), len(round2["b"]), len(round2["c"])}
	slices.Sort(counts)
	if !slices.Equal(counts, []int{3, 3, 4}) {
		t.Fatalf("round 2 counts %v (%v), want 4/3/3", counts, round2)
	}
	// Only the three partitions c needed moved, and c got exactly those.
	var freed []int32
	for _, p := range span(0, 10) {
		if !slices.Contains(round1["a"], p) && !slices.Contains(round1["b"], p) {
			freed = append(freed, p)
		}
	}
	if !slices.Equal(round2["c"], freed) {
		t.Fatalf("round 2: c got %v, want the 3 partitions a and b gave up %v", round2["c"], freed)
	}
}

func TestBalancerGivesPartitionsOfLeftMemberAtOnce(t *testing.T) {
	topics := groupTopics(10)
	// b left the group; nobody claims 5-9, so nothing needs revoking.
	got := assignedNumbers(t, topics, balanceRound(t, topics,
		member{id: "a", owned: span(0, 5), generation: 7},
	))
	if want := span(0, 10); !slices.Equal(got["a"], want) {
		t.Fatalf("remaining member got %v, want %v in one round", got["a"], want)
	}
}

func TestBalancerAssignsMovingPartitionToNobodyUntilOwnerRevokes(t *testing.T) {
	topics := groupTopics(10)
	// a owns everything; b joins. Half must move from a to b.
	round1 := assignedNumbers(t, topics, balanceRound(t, topics,
		member{id: "a", owned: span(0, 10), generation: 3},
		member{id: "b", generation: -1},
	))
	if len(round1["a"]) != 5 {
		t.Fatalf("round 1: a keeps %v, want 5 of its partitions", round1["a"])
	}
	if len(round1["b"]) != 0 {
		t.Fatalf("round 1: b was given %v while a still owns them; a cooperative balancer must wait for a to revoke", round1["b"])
	}

	// a revoked the rest and rejoins claiming only what it kept.
	round2 := assignedNumbers(t, topics, balanceRound(t, topics,
		member{id: "a", owned: round1["a"], generation: 4},
		member{id: "b", generation: 4},
	))
	if !slices.Equal(round2["a"], round1["a"]) {
		t.Fatalf("round 2: a's partitions changed from %v to %v", round1["a"], round2["a"])
	}
	var revoked []int32
	for _, p := range span(0, 10) {
		if !slices.Contains(round1["a"], p) {
			revoked = append(revoked, p)
		}
	}
	if !slices.Equal(round2["b"], revoked) {
		t.Fatalf("round 2: b got %v, want the partitions a revoked %v", round2["b"], revoked)
	}
}

func TestBalancerIgnoresStaleClaimOfLowerGeneration(t *testing.T) {
	topics := groupTopics(10)
	// b missed rebalances: it still claims 5-9 from generation 3, but a has
	// owned everything since generation 5. Whatever order the members come
	// in, b must not be handed 5-9 as if it owned them: a is consuming them
	// and must revoke them first.
	a := member{id: "a", owned: span(0, 10), generation: 5}
	b := member{id: "b", owned: span(5, 10), generation: 3}
	for _, order := range [][]member{{a, b}, {b, a}} {
		t.Run(fmt.Sprintf("%s-first", order[0].id), func(t *testing.T) {
			got := assignedNumbers(t, topics, balanceRound(t, topics, order...))
			if len(got["b"]) != 0 {
				t.Fatalf("stale member b was given %v, which a owns at a higher generation", got["b"])
			}
			if len(got["a"]) != 5 {
				t.Fatalf("a keeps %v, want 5 of its partitions", got["a"])
			}
		})
	}
}
