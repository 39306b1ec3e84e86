package kafka

import (
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CopartitionBalancer returns the group balancer of sluice processors. It
// assigns partition numbers rather than topic partitions: the member that owns
// partition p owns partition p of every input topic, because a task joins the
// records of all its inputs with one partition of one table.
//
// It is sticky (a member keeps what it owns up to its fair share) and
// cooperative (a partition moving from one member to another is first given to
// nobody, so its owner revokes it and commits, and is assigned in the
// rebalance that follows). Member metadata and assignments use the standard
// consumer protocol encoding, so admin tools can describe the group.
//
// With a Standby, the member takes part in standby placement (see
// standbys.go): it tells the leader what it asks for and holds warm, and
// learns its standbys from its assignment. Without one (nil), it asks for
// none and hosts none.
func CopartitionBalancer(s Standby) kgo.GroupBalancer { return copartitioned{s} }

// CopartitionProtocol is the protocol name CopartitionBalancer joins with.
const CopartitionProtocol = "sluice-copartitioned"

type copartitioned struct{ standby Standby }

func (copartitioned) ProtocolName() string { return CopartitionProtocol }
func (copartitioned) IsCooperative() bool  { return true }

func (c copartitioned) JoinGroupMetadata(interests []string, current map[string][]int32, generation int32) []byte {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.UserData = encodeJoinUserData(c.standby)
	meta.Version = 3
	meta.Topics = interests
	meta.Generation = generation
	for topic, partitions := range current {
		owned := kmsg.NewConsumerMemberMetadataOwnedPartition()
		owned.Topic = topic
		owned.Partitions = partitions
		meta.OwnedPartitions = append(meta.OwnedPartitions, owned)
	}
	sort.Slice(meta.OwnedPartitions, func(i, j int) bool {
		return meta.OwnedPartitions[i].Topic < meta.OwnedPartitions[j].Topic
	})
	return meta.AppendTo(nil)
}

func (c copartitioned) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	var a kmsg.ConsumerMemberAssignment
	if err := a.ReadFrom(assignment); err != nil {
		return nil, fmt.Errorf("sync assignment parse failed: %w", err)
	}
	standbys, err := decodeAssignmentUserData(a.UserData)
	if err != nil {
		return nil, err
	}
	m := make(map[string][]int32, len(a.Topics))
	for _, topic := range a.Topics {
		m[topic.Topic] = topic.Partitions
	}
	if c.standby != nil {
		c.standby.Assigned(standbys)
	}
	return m, nil
}

func (c copartitioned) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	b, err := kgo.NewConsumerBalancer(c, members)
	return b, b.MemberTopics(), err
}

// Balance implements kgo.ConsumerBalancerBalance.
func (copartitioned) Balance(b *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	members := b.Members()
	metas := make([]*kmsg.ConsumerMemberMetadata, len(members))
	standbys := make([]memberStandbys, len(members))
	for i := range members {
		_, metas[i] = b.MemberAt(i)
		standbys[i] = decodeJoinUserData(metas[i].UserData)
	}
	var n int32
	for _, count := range topics {
		n = max(n, count)
	}
	owners := currentOwners(metas, n)
	assigned := assignNumbers(len(members), n, owners, func(m int, p int32) bool { return standbys[m].warm[p] })

	plan := make(syncPlan, len(members))
	for i := range members {
		plan[i].member = members[i].MemberID
		plan[i].topics = make(map[string][]int32)
	}
	for m, ps := range placeStandbys(standbys, assigned, owners) {
		plan[m].standbys = ps
	}
	for p, m := range assigned {
		if m < 0 || (owners[p] >= 0 && owners[p] != m) {
			// Unassigned, or moving: its owner revokes it first.
			continue
		}
		for _, topic := range metas[m].Topics {
			if count, ok := topics[topic]; ok && int32(p) < count {
				plan[m].topics[topic] = append(plan[m].topics[topic], int32(p))
			}
		}
	}
	return plan
}

// syncPlan is the balancer's plan: each member's partitions, by topic, and
// its standbys, carried in the assignment's user data.
type syncPlan []struct {
	member   string
	topics   map[string][]int32
	standbys []int32
}

func (plan syncPlan) IntoSyncAssignment() []kmsg.SyncGroupRequestGroupAssignment {
	out := make([]kmsg.SyncGroupRequestGroupAssignment, 0, len(plan))
	for _, m := range plan {
		var a kmsg.ConsumerMemberAssignment
		for _, topic := range slices.Sorted(maps.Keys(m.topics)) {
			t := kmsg.NewConsumerMemberAssignmentTopic()
			t.Topic = topic
			t.Partitions = slices.Sorted(slices.Values(m.topics[topic]))
			a.Topics = append(a.Topics, t)
		}
		a.UserData = encodeAssignmentUserData(m.standbys)
		s := kmsg.NewSyncGroupRequestGroupAssignment()
		s.MemberID = m.member
		s.MemberAssignment = a.AppendTo(nil)
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MemberID < out[j].MemberID })
	return out
}

// currentOwners returns, per partition number, the member that owns it now,
// or -1. When several members claim a number, the claim of the highest
// generation wins: a lower one is left over from a member that missed a
// rebalance.
func currentOwners(metas []*kmsg.ConsumerMemberMetadata, n int32) []int {
	owners := make([]int, n)
	gens := make([]int32, n)
	for p := range owners {
		owners[p] = -1
	}
	for m, meta := range metas {
		for _, owned := range meta.OwnedPartitions {
			for _, p := range owned.Partitions {
				if p < 0 || p >= n {
					continue
				}
				if owners[p] < 0 || meta.Generation > gens[p] {
					owners[p] = m
					gens[p] = meta.Generation
				}
			}
		}
	}
	return owners
}

// assignNumbers spreads n partition numbers over members so that counts
// differ by at most one, keeping each member's current partitions where the
// spread allows, and giving a partition that needs an owner to a member
// that holds it warm where one has room. A member over its share gives up
// first the partitions that a member with room holds warm, so that a member
// joining with warm copies (a standby, or a store kept from before) takes
// those over and restores only their tail. It returns the member of each
// number.
func assignNumbers(members int, n int32, owners []int, warm func(m int, p int32) bool) []int {
	assigned := make([]int, n)
	for p := range assigned {
		assigned[p] = -1
	}
	if members == 0 {
		return assigned
	}
	floor := int(n) / members
	extra := int(n) % members // how many members may hold floor+1

	count := make([]int, members)
	for p, m := range owners {
		if m >= 0 {
			assigned[p] = m
			count[m]++
		}
	}
	// Members owning the most keep the extra slots, so fewer partitions move.
	order := make([]int, members)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return count[order[i]] > count[order[j]] })
	quota := make([]int, members)
	for rank, m := range order {
		quota[m] = floor
		if rank < extra {
			quota[m]++
		}
	}
	// A partition whose owner left restores only its tail on a member that
	// holds it warm.
	for p := range assigned {
		if assigned[p] >= 0 {
			continue
		}
		for w := range members {
			if count[w] < quota[w] && warm(w, int32(p)) {
				assigned[p] = w
				count[w]++
				break
			}
		}
	}
	// So does a partition a member over its share gives up, on the member
	// with room that holds it warm; members in order, partitions in order.
	for w := range members {
		for p := range assigned {
			if count[w] >= quota[w] {
				break
			}
			if o := assigned[p]; o >= 0 && o != w && o == owners[p] && count[o] > quota[o] && warm(w, int32(p)) {
				assigned[p] = w
				count[o]--
				count[w]++
			}
		}
	}
	// What a member over its share still has to give up, it gives up from
	// its highest numbers, to whichever member has room.
	for p := len(assigned) - 1; p >= 0; p-- {
		if o := assigned[p]; o >= 0 && count[o] > quota[o] {
			assigned[p] = -1
			count[o]--
		}
	}
	m := 0
	for p := range assigned {
		if assigned[p] >= 0 {
			continue
		}
		for count[m] >= quota[m] {
			m = (m + 1) % members
		}
		assigned[p] = m
		count[m]++
	}
	return assigned
}
