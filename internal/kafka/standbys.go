package kafka

// Standby placement rides on the consumer protocol's user data, so that the
// group leader, which alone sees every member, decides it with the
// assignment and every member learns its part from its own assignment:
//
//   - A member's join metadata carries how many standbys per partition it
//     asks for (0: it hosts none) and the partitions it holds warm now, its
//     standbys that have caught up with their changelog.
//   - The leader keeps max(asked) standbys of each partition, on members
//     that asked for some, never on the partition's owner after this round.
//     It spreads them: no member holds more than its share while another
//     has room, and the copies of one owner's partitions go to as many
//     members as they can, so that when the owner goes each of the others
//     takes some over warm. Within that it keeps a copy where it is warm
//     (a standby, or the owner a partition moves away from), and otherwise
//     takes the members after the owner in the member list, starting one
//     further for each of the owner's partitions.
//   - A partition without an owner (its owner left) goes to a member that
//     holds it warm, if one has room under its fair share.
//   - When members join, a member over its fair share gives up first the
//     partitions that a member with room holds warm, and those go to that
//     member (after the owner has revoked them), so that a member joining
//     with warm copies takes those over and restores only their tail.
//     While the owner revokes a partition that moves, the member it moves
//     to follows it as a standby beyond the others, so that by the next
//     round it has restored it, or part of it, in the background.
//   - A member's assignment carries its standbys. Members that know nothing
//     of standbys send and receive empty user data, which means none.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
)

// Standby is a member's side of standby placement.
type Standby interface {
	// Wanted is how many standbys of each partition the member asks for;
	// 0 means it hosts none.
	Wanted() int
	// Warm returns the partition numbers the member holds warm now.
	Warm() []int32
	// Assigned is called with the member's standbys each time the member
	// receives an assignment, before the client's assignment callbacks.
	Assigned(standbys []int32)
}

// userDataVersion is the first byte of the user data this file writes.
const userDataVersion = 1

// memberStandbys is what one member told the leader.
type memberStandbys struct {
	wanted int
	warm   map[int32]bool
}

func encodeJoinUserData(s Standby) []byte {
	if s == nil {
		return nil
	}
	b := []byte{userDataVersion}
	b = binary.BigEndian.AppendUint32(b, uint32(max(s.Wanted(), 0)))
	return appendPartitions(b, s.Warm())
}

// decodeJoinUserData reads a member's join user data; anything it does not
// understand reads as a member that asks for no standbys and holds none.
func decodeJoinUserData(b []byte) memberStandbys {
	m := memberStandbys{warm: map[int32]bool{}}
	if len(b) < 5 || b[0] != userDataVersion {
		return m
	}
	wanted := binary.BigEndian.Uint32(b[1:5])
	warm, err := readPartitions(b[5:])
	if err != nil {
		return m
	}
	m.wanted = int(min(wanted, 1<<16))
	for _, p := range warm {
		m.warm[p] = true
	}
	return m
}

func encodeAssignmentUserData(standbys []int32) []byte {
	if len(standbys) == 0 {
		return nil
	}
	return appendPartitions([]byte{userDataVersion}, standbys)
}

// decodeAssignmentUserData reads the standbys of an assignment; empty user
// data means none.
func decodeAssignmentUserData(b []byte) ([]int32, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[0] != userDataVersion {
		return nil, fmt.Errorf("standby assignment: unknown version %d", b[0])
	}
	return readPartitions(b[1:])
}

func appendPartitions(b []byte, ps []int32) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(ps)))
	for _, p := range ps {
		b = binary.BigEndian.AppendUint32(b, uint32(p))
	}
	return b
}

func readPartitions(b []byte) ([]int32, error) {
	if len(b) < 4 {
		return nil, errors.New("standby partitions: short count")
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if uint64(len(b)) != 4*uint64(n) {
		return nil, fmt.Errorf("standby partitions: %d bytes for %d partitions", len(b), n)
	}
	ps := make([]int32, n)
	for i := range ps {
		ps[i] = int32(binary.BigEndian.Uint32(b[4*i:]))
	}
	return ps, nil
}

// placeStandbys returns the standbys of each member: for every partition p,
// up to the most standbys any member asked for, on members that asked for
// some other than target[p], its owner after this round. owners[p] is its
// owner now, warm when it differs from target[p]: a partition moving away
// stays warm on the member it leaves, and is followed by target[p] too
// until it is assigned there.
func placeStandbys(members []memberStandbys, target, owners []int) [][]int32 {
	out := make([][]int32, len(members))
	want := 0
	for _, m := range members {
		want = max(want, m.wanted)
	}
	if want == 0 {
		return out
	}
	// share is the most copies a member holds while another has room.
	hosts := 0
	for _, m := range members {
		if m.wanted > 0 {
			hosts++
		}
	}
	share := (len(target)*min(want, max(hosts-1, 1)) + hosts - 1) / max(hosts, 1)
	load := make([]int, len(members))
	ofOwner := make([]map[int]int, len(members)) // copies of each owner's partitions
	for m := range ofOwner {
		ofOwner[m] = make(map[int]int)
	}
	// rank[p] is p's place among the partitions of its owner.
	rank := make([]int, len(target))
	owns := make(map[int]int)
	for p, o := range target {
		rank[p] = owns[o]
		owns[o]++
	}
	for p := range target {
		// The members after the owner around the ring, starting one
		// further for each partition of the owner, so that the copies of
		// one owner's partitions spread over the other members: when the
		// owner goes, each takes over some of them warm.
		from := max(target[p], 0)
		var ring []int
		for i := 1; i < len(members); i++ {
			if m := (from + i) % len(members); members[m].wanted > 0 && m != target[p] {
				ring = append(ring, m)
			}
		}
		if len(ring) == 0 {
			continue
		}
		k := rank[p] % len(ring)
		cands := slices.Concat(ring[k:], ring[:k])
		// A member under its share of copies first: a member that gave
		// partitions away keeps them all warm, and would otherwise keep
		// every copy. Then the member with the fewest copies of this
		// owner's partitions, so that when the owner goes each of the
		// others takes some over warm; a copy restores in the background,
		// a takeover does not. Then warm, then around the ring.
		warm := func(m int) bool { return members[m].warm[int32(p)] || owners[p] == m }
		less := func(a, b int) bool {
			if oa, ob := load[a] >= share, load[b] >= share; oa != ob {
				return ob
			}
			if ca, cb := ofOwner[a][target[p]], ofOwner[b][target[p]]; ca != cb {
				return ca < cb
			}
			return warm(a) && !warm(b)
		}
		sort.SliceStable(cands, func(i, j int) bool { return less(cands[i], cands[j]) })
		for _, m := range cands[:min(want, len(cands))] {
			out[m] = append(out[m], int32(p))
			load[m]++
			ofOwner[m][target[p]]++
		}
	}
	// A partition that moves is assigned to nobody until its owner has
	// revoked it; meanwhile the member it moves to follows it too, beyond
	// the copies above, so that it has restored some or all of it by the
	// time it takes it over.
	for p, o := range owners {
		if m := target[p]; o >= 0 && m >= 0 && m != o && members[m].wanted > 0 {
			out[m] = append(out[m], int32(p))
		}
	}
	for _, ps := range out {
		slices.Sort(ps)
	}
	return out
}
