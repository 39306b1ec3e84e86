package export

// A generator of counter updates like an API-management backend's, for
// demos and load: each API call counts, for every period, in the service's
// counters and in its application's or user's.

import (
	"math/rand/v2"
	"strconv"
	"time"
)

// Generator makes counter updates: Hit picks a service, an application or a
// user of it, and a metric or a response code, and returns the updates of
// all the counters that one API call changes, every period included, each
// counter's value one more than before. It remembers every counter it
// made, so it is for demos and tests, not for runs of days. It is not safe
// for concurrent use.
type Generator struct {
	r      *rand.Rand
	counts map[string]int64
}

// NewGenerator returns a generator that makes the same updates for the same
// seed.
func NewGenerator(seed uint64) *Generator {
	return &Generator{r: rand.New(rand.NewPCG(seed, seed^0x5eed)), counts: make(map[string]int64)}
}

// Update is one counter's new value.
type Update struct {
	Key   string
	Value int64
}

var (
	genServices = []string{"1006", "2045", "3117"}
	genMetrics  = []string{"hits", "255", "search"}
	genCodes    = []string{"200", "2XX", "404", "4XX", "503", "5XX"}
)

// Hit returns the updates of one API call at now.
func (g *Generator) Hit(now time.Time) []Update {
	svc := "stats/{service:" + genServices[g.r.IntN(len(genServices))] + "}"
	var who string
	switch g.r.IntN(3) {
	case 0:
		who = "/cinstance:app" + strconv.Itoa(g.r.IntN(8))
	case 1:
		who = "/uinstance:user" + strconv.Itoa(g.r.IntN(12))
	}
	what := "/metric:" + genMetrics[g.r.IntN(len(genMetrics))]
	if g.r.IntN(4) == 0 {
		what = "/response_code:" + genCodes[g.r.IntN(len(genCodes))]
	}
	prefixes := []string{svc}
	if who != "" {
		prefixes = append(prefixes, svc+who)
	}
	var ups []Update
	for p := Eternity; p <= Minute; p++ {
		suffix := "/" + p.String()
		if p != Eternity {
			suffix += ":" + CompactTime(p.Start(now))
		}
		for _, prefix := range prefixes {
			key := prefix + what + suffix
			g.counts[key]++
			ups = append(ups, Update{Key: key, Value: g.counts[key]})
		}
	}
	return ups
}
