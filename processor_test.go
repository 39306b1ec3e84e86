package sluice_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

func TestEmitProcessViewRoundTrip(t *testing.T) {
	b := startBroker(t)
	const parts = 4
	g := defineCounter("roundtrip", "clicks")
	runProcessor(t, g, processorOpts(b, parts, t.TempDir())...)

	em, err := sluice.NewEmitter("clicks", codec.String(), emitterOpts(b, parts)...)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	want := make(map[string]int64)
	for i := range 1000 {
		key := fmt.Sprintf("user-%d", i%10)
		want[key]++
		em.EmitAsync(key, time.Now().String(), nil)
	}
	if err := em.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}

	v := startView(t, g.TableTopic(), codec.JSON[counter](), viewOpts(b, parts)...)
	expectCounts(t, v, want, 30*time.Second)

	if _, err := v.Get("nobody"); err != sluice.ErrNotFound {
		t.Fatalf("get of a missing key: err %v, want ErrNotFound", err)
	}
	var keys []string
	if err := v.Iterate("user-3", "user-6", func(k string, _ counter) bool {
		keys = append(keys, k)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(keys) != "[user-3 user-4 user-5]" {
		t.Fatalf("iterate [user-3, user-6): got %v", keys)
	}
}
