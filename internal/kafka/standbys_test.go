package kafka

import (
	"slices"
	"sort"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// standbyMember is a member's side of standby placement in these tests: what
// it asks for and holds warm, and the standbys its last assignment gave it.
type standbyMember struct {
	wanted int
	warm   []int32
	given  []int32
}

func (s *standbyMember) Wanted() int               { return s.wanted }
func (s *standbyMember) Warm() []int32             { return s.warm }
func (s *standbyMember) Assigned(standbys []int32) { s.given = standbys }

// standbyRound runs one rebalance as balanceRound does, each member with a
// balancer of its own, and returns each member's partition numbers and
// standbys.
func standbyRound(t *testing.T, topics map[string]int32, members []member, sides []*standbyMember) (owned, standbys map[string][]int32) {
	t.Helper()
	names := make([]string, 0, len(topics))
	for topic := range topics {
		names = append(names, topic)
	}
	sort.Strings(names)
	join := make([]kmsg.JoinGroupResponseMember, len(members))
	balancers := make(map[string]kgo.GroupBalancer)
	for i, m := range members {
		b := CopartitionBalancer(sides[i])
		balancers[m.id] = b
		var current map[string][]int32
		if len(m.owned) > 0 {
			current = make(map[string][]int32)
			for _, topic := range names {
				current[topic] = slices.Clone(m.owned)
			}
		}
		join[i] = kmsg.JoinGroupResponseMember{MemberID: m.id, ProtocolMetadata: b.JoinGroupMetadata(names, current, m.generation)}
	}
	// Any member may lead: the first one does here.
	mb, _, err := balancers[members[0].id].MemberBalancer(join)
	if err != nil {
		t.Fatalf("member balancer: %v", err)
	}
	into, err := mb.(kgo.GroupMemberBalancerOrError).BalanceOrError(topics)
	if err != nil {
		t.Fatalf("balance: %v", err)
	}
	plan := make(map[string]map[string][]int32)
	standbys = make(map[string][]int32)
	for _, a := range into.IntoSyncAssignment() {
		parsed, err := balancers[a.MemberID].ParseSyncAssignment(a.MemberAssignment)
		if err != nil {
			t.Fatalf("parse assignment of %s: %v", a.MemberID, err)
		}
		plan[a.MemberID] = parsed
	}
	for i, m := range members {
		standbys[m.id] = sides[i].given
	}
	return assignedNumbers(t, topics, plan), standbys
}

func TestBalancerPlacesEachPartitionsStandbysOnOtherMembersEvenly(t *testing.T) {
	topics := groupTopics(6)
	members := []member{{id: "a", generation: -1}, {id: "b", generation: -1}, {id: "c", generation: -1}}
	sides := []*standbyMember{{wanted: 1}, {wanted: 1}, {wanted: 1}}
	owned, standbys := standbyRound(t, topics, members, sides)
	holders := make(map[int32][]string)
	for id, ps := range standbys {
		if len(ps) != 2 {
			t.Fatalf("member %s has standbys %v, want 2 of the 6 partitions", id, ps)
		}
		for _, p := range ps {
			if slices.Contains(owned[id], p) {
				t.Fatalf("member %s is a standby of %d, which it owns", id, p)
			}
			holders[p] = append(holders[p], id)
		}
	}
	for p := range int32(6) {
		if len(holders[p]) != 1 {
			t.Fatalf("partition %d has standbys %v, want 1", p, holders[p])
		}
	}
}

func TestBalancerPlacesNoMoreStandbysThanThereAreOtherMembers(t *testing.T) {
	topics := groupTopics(4)
	members := []member{{id: "a", generation: -1}, {id: "b", generation: -1}}
	sides := []*standbyMember{{wanted: 3}, {wanted: 3}}
	owned, standbys := standbyRound(t, topics, members, sides)
	if !slices.Equal(standbys["a"], owned["b"]) || !slices.Equal(standbys["b"], owned["a"]) {
		t.Fatalf("with two members each must be the standby of what the other owns: owned %v, standbys %v", owned, standbys)
	}
}

func TestBalancerGivesAPartitionOfALeftMemberToTheMemberThatHoldsItWarm(t *testing.T) {
	topics := groupTopics(6)
	// c owned 4 and 5 and left; b holds 4 warm, a holds 5 warm.
	members := []member{{id: "a", owned: []int32{0, 1}, generation: 3}, {id: "b", owned: []int32{2, 3}, generation: 3}}
	sides := []*standbyMember{{wanted: 1, warm: []int32{2, 5}}, {wanted: 1, warm: []int32{0, 4}}}
	owned, _ := standbyRound(t, topics, members, sides)
	if !slices.Equal(owned["a"], []int32{0, 1, 5}) || !slices.Equal(owned["b"], []int32{2, 3, 4}) {
		t.Fatalf("owned %v, want a 0 1 5 and b 2 3 4: each the partition it holds warm", owned)
	}
}

func TestBalancerKeepsStandbysWhereTheyAreWarm(t *testing.T) {
	topics := groupTopics(6)
	members := []member{
		{id: "a", owned: []int32{0, 1}, generation: 2},
		{id: "b", owned: []int32{2, 3}, generation: 2},
		{id: "c", owned: []int32{4, 5}, generation: 2},
	}
	// Spread, but not as a first placement would spread them.
	warm := map[string][]int32{"a": {2, 5}, "b": {0, 4}, "c": {1, 3}}
	sides := []*standbyMember{{wanted: 1, warm: warm["a"]}, {wanted: 1, warm: warm["b"]}, {wanted: 1, warm: warm["c"]}}
	_, standbys := standbyRound(t, topics, members, sides)
	for id, ps := range warm {
		if !slices.Equal(standbys[id], ps) {
			t.Fatalf("standbys %v, want %v: each where it is warm", standbys, warm)
		}
	}
}

func TestBalancerMovesACopyToSpreadTheCopiesOfOneOwner(t *testing.T) {
	topics := groupTopics(6)
	members := []member{
		{id: "a", owned: []int32{0, 1}, generation: 2},
		{id: "b", owned: []int32{2, 3}, generation: 2},
		{id: "c", owned: []int32{4, 5}, generation: 2},
	}
	// a gave 2-5 away and holds them all warm.
	sides := []*standbyMember{{wanted: 1, warm: span(2, 6)}, {wanted: 1}, {wanted: 1}}
	_, standbys := standbyRound(t, topics, members, sides)
	for _, owner := range [][]int32{{2, 3}, {4, 5}} {
		for id, ps := range standbys {
			if slices.Contains(ps, owner[0]) && slices.Contains(ps, owner[1]) {
				t.Fatalf("%s holds the copies of both %v (standbys %v); the owner's going would leave one cold", id, owner, standbys)
			}
		}
	}
	if len(standbys["a"]) != 2 {
		t.Fatalf("a keeps copies of %v, want 2 of those it holds warm (standbys %v)", standbys["a"], standbys)
	}
}

func TestBalancerKeepsAMovingPartitionWarmOnTheMemberItLeaves(t *testing.T) {
	topics := groupTopics(4)
	members := []member{{id: "a", owned: span(0, 4), generation: 3}, {id: "b", generation: -1}}
	sides := []*standbyMember{{wanted: 1}, {wanted: 1}}
	owned, standbys := standbyRound(t, topics, members, sides)
	var moving []int32
	for _, p := range span(0, 4) {
		if !slices.Contains(owned["a"], p) {
			moving = append(moving, p)
		}
	}
	if len(moving) != 2 || !slices.Equal(standbys["a"], moving) {
		t.Fatalf("a keeps %v and is the standby of %v; want it the standby of the 2 it gives up", owned["a"], standbys["a"])
	}
}

func TestBalancerPlacesNoStandbysOnMembersThatAskForNone(t *testing.T) {
	topics := groupTopics(4)
	members := []member{{id: "a", generation: -1}, {id: "b", generation: -1}, {id: "c", generation: -1}}
	sides := []*standbyMember{{wanted: 1}, {wanted: 0}, {wanted: 1}}
	owned, standbys := standbyRound(t, topics, members, sides)
	if len(standbys["b"]) != 0 {
		t.Fatalf("b asked for no standbys and was given %v", standbys["b"])
	}
	for p := range int32(4) {
		n := 0
		for _, id := range []string{"a", "c"} {
			if slices.Contains(standbys[id], p) {
				n++
				if slices.Contains(owned[id], p) {
					t.Fatalf("%s is the standby of %d, which it owns", id, p)
				}
			}
		}
		if n != 1 {
			t.Fatalf("partition %d has %d standbys, want 1 (standbys %v, owned %v)", p, n, standbys, owned)
		}
	}
}

func TestBalancerSpreadsTheCopiesOfOneOwnersPartitionsOverTheOtherMembers(t *testing.T) {
	topics := groupTopics(6)
	members := []member{{id: "a", generation: -1}, {id: "b", generation: -1}, {id: "c", generation: -1}}
	sides := []*standbyMember{{wanted: 1}, {wanted: 1}, {wanted: 1}}
	owned, standbys := standbyRound(t, topics, members, sides)
	for owner, ps := range owned {
		holders := make(map[string]bool)
		for _, p := range ps {
			for id, sb := range standbys {
				if slices.Contains(sb, p) {
					holders[id] = true
				}
			}
		}
		if len(holders) != 2 {
			t.Fatalf("the copies of %s's partitions %v are on %v, want both other members (standbys %v)", owner, ps, holders, standbys)
		}
	}

	// c leaves; a and b hold their copies warm and take c's partitions
	// over, each the one it has a copy of.
	left := owned["c"]
	next := []member{{id: "a", owned: owned["a"], generation: 2}, {id: "b", owned: owned["b"], generation: 2}}
	nextSides := []*standbyMember{{wanted: 1, warm: standbys["a"]}, {wanted: 1, warm: standbys["b"]}}
	after, _ := standbyRound(t, topics, next, nextSides)
	for _, p := range left {
		for id, ps := range after {
			if slices.Contains(ps, p) && !slices.Contains(standbys[id], p) {
				t.Fatalf("c's partition %d went to %s, which had no copy of it (standbys %v, now %v)", p, id, standbys, after)
			}
		}
	}
}

// joinRounds runs the two rounds of a cooperative join: in the first the
// members claim what they own, and the partitions that move are given to
// nobody; in the second each claims what it kept. It returns both rounds'
// partition numbers and the second round's standbys.
func joinRounds(t *testing.T, topics map[string]int32, members []member, sides []*standbyMember) (first, second, standbys map[string][]int32) {
	t.Helper()
	first, _ = standbyRound(t, topics, members, sides)
	next := make([]member, len(members))
	for i, m := range members {
		next[i] = member{id: m.id, owned: first[m.id], generation: 9}
	}
	second, standbys = standbyRound(t, topics, next, sides)
	return first, second, standbys
}

func TestJoinGivesTheNewMemberThePartitionsItHoldsWarm(t *testing.T) {
	topics := groupTopics(6)
	// b joins holding 0-2 warm: a gives up those, not the ones it would
	// give up to a cold member.
	members := []member{{id: "a", owned: span(0, 6), generation: 3}, {id: "b", generation: -1}}
	sides := []*standbyMember{{wanted: 1}, {wanted: 1, warm: span(0, 3)}}
	first, second, _ := joinRounds(t, topics, members, sides)
	if !slices.Equal(first["a"], span(3, 6)) || len(first["b"]) != 0 {
		t.Fatalf("first round: a keeps %v and b gets %v, want a 3-5 and b nothing until a revokes", first["a"], first["b"])
	}
	if !slices.Equal(second["a"], span(3, 6)) || !slices.Equal(second["b"], span(0, 3)) {
		t.Fatalf("second round: a %v and b %v, want a 3-5 and b the 0-2 it holds warm", second["a"], second["b"])
	}
}

func TestJoinOfTwoMembersGivesEachThePartitionsItHoldsWarm(t *testing.T) {
	topics := groupTopics(9)
	members := []member{{id: "a", owned: span(0, 9), generation: 3}, {id: "b", generation: -1}, {id: "c", generation: -1}}
	sides := []*standbyMember{{wanted: 1}, {wanted: 1, warm: []int32{1, 4, 7}}, {wanted: 1, warm: []int32{0, 3, 5}}}
	first, second, standbys := joinRounds(t, topics, members, sides)
	if want := []int32{2, 6, 8}; !slices.Equal(first["a"], want) || !slices.Equal(second["a"], want) {
		t.Fatalf("a keeps %v then %v, want %v: what neither new member holds warm", first["a"], second["a"], want)
	}
	if !slices.Equal(second["b"], []int32{1, 4, 7}) || !slices.Equal(second["c"], []int32{0, 3, 5}) {
		t.Fatalf("b gets %v and c %v, want each what it holds warm", second["b"], second["c"])
	}
	for id, ps := range standbys {
		for _, p := range ps {
			if slices.Contains(second[id], p) {
				t.Fatalf("%s is the standby of %d, which it owns (standbys %v, owned %v)", id, p, standbys, second)
			}
		}
	}
}

func TestJoinMovesFromEachOwnerThePartitionsTheNewMemberHoldsWarm(t *testing.T) {
	topics := groupTopics(12)
	// Fair shares are 4/4/4: a and b each give up two. c holds 1 and 7
	// warm, and 9 and 10, which b can give up only two of with 7.
	members := []member{
		{id: "a", owned: span(0, 6), generation: 3},
		{id: "b", owned: span(6, 12), generation: 3},
		{id: "c", generation: -1},
	}
	sides := []*standbyMember{{wanted: 1, warm: span(6, 12)}, {wanted: 1, warm: span(0, 6)}, {wanted: 1, warm: []int32{1, 7, 9, 10}}}
	first, second, _ := joinRounds(t, topics, members, sides)
	for _, p := range []int32{1, 7} {
		if !slices.Contains(second["c"], p) {
			t.Fatalf("c gets %v, want it to include %d, which it holds warm", second["c"], p)
		}
	}
	warmMoves := 0
	for _, p := range second["c"] {
		if slices.Contains(sides[2].warm, p) {
			warmMoves++
		}
	}
	if len(second["c"]) != 4 || warmMoves != 3 {
		t.Fatalf("c gets %v, want 4 partitions, 3 of them warm on c", second["c"])
	}
	if len(first["a"]) != 4 || len(first["b"]) != 4 || !slices.Equal(first["a"], second["a"]) || !slices.Equal(first["b"], second["b"]) {
		t.Fatalf("a keeps %v then %v and b %v then %v, want 4 each, kept", first["a"], second["a"], first["b"], second["b"])
	}
}

func TestJoinPlacementIsTheSameEveryRound(t *testing.T) {
	topics := groupTopics(12)
	members := []member{
		{id: "a", owned: span(0, 6), generation: 3},
		{id: "b", owned: span(6, 12), generation: 3},
		{id: "c", generation: -1},
		{id: "d", generation: -1},
	}
	sides := []*standbyMember{{wanted: 1, warm: span(6, 12)}, {wanted: 1, warm: span(0, 6)}, {wanted: 1, warm: []int32{2, 8, 9}}, {wanted: 1, warm: []int32{2, 3, 11}}}
	owned, standbys := standbyRound(t, topics, members, sides)
	for range 5 {
		again, againStandbys := standbyRound(t, topics, members, sides)
		for _, m := range members {
			if !slices.Equal(again[m.id], owned[m.id]) || !slices.Equal(againStandbys[m.id], standbys[m.id]) {
				t.Fatalf("%s: %v and standbys %v, then %v and %v", m.id, owned[m.id], standbys[m.id], again[m.id], againStandbys[m.id])
			}
		}
	}
}

func TestJoinWarmsAMovingPartitionOnTheMemberThatTakesItWhileItsOwnerRevokes(t *testing.T) {
	topics := groupTopics(6)
	members := []member{{id: "a", owned: span(0, 6), generation: 3}, {id: "b", generation: -1}, {id: "c", generation: -1}}
	sides := []*standbyMember{{wanted: 1}, {wanted: 1}, {wanted: 1}}
	first, firstStandbys := standbyRound(t, topics, members, sides)
	// What b and c take next round is assigned to nobody now; meanwhile
	// each follows what it takes, and a what it gives up.
	next := []member{{id: "a", owned: first["a"], generation: 4}, {id: "b", generation: 4}, {id: "c", generation: 4}}
	second, secondStandbys := standbyRound(t, topics, next, sides)
	for _, id := range []string{"b", "c"} {
		if len(first[id]) != 0 || len(second[id]) != 2 {
			t.Fatalf("%s gets %v then %v, want nothing until a revokes, then 2", id, first[id], second[id])
		}
		for _, p := range second[id] {
			if !slices.Contains(firstStandbys[id], p) {
				t.Fatalf("%s takes %d over but did not follow it while a revoked it (standbys %v)", id, p, firstStandbys[id])
			}
		}
	}
	// Each partition keeps its copy on a member other than the one it
	// moves to, as without the extra one.
	for _, p := range span(0, 6) {
		var on []string
		for id, ps := range firstStandbys {
			if slices.Contains(ps, p) && !slices.Contains(second[id], p) {
				on = append(on, id)
			}
		}
		if len(on) != 1 {
			t.Fatalf("partition %d has copies on %v besides its next owner, want 1 (standbys %v)", p, on, firstStandbys)
		}
	}
	for id, ps := range secondStandbys {
		for _, p := range ps {
			if slices.Contains(second[id], p) {
				t.Fatalf("%s is the standby of %d, which it owns (standbys %v, owned %v)", id, p, secondStandbys, second)
			}
		}
	}
}
