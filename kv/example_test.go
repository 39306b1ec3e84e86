package kv_test

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/sluice-io/sluice/kv"
)

func ExampleNewMemory() {
	ctx := context.Background()
	counts := kv.NewMemory[int64]()
	_ = counts.PutMany(ctx, map[string]int64{"kafka": 3, "go": 1})
	_ = counts.Put(ctx, "go", 2)
	_ = counts.Delete(ctx, "nothing") // not an error

	n, ok, _ := counts.Get(ctx, "kafka")
	fmt.Println("kafka:", n, ok)
	many, _ := counts.GetMany(ctx, []string{"go", "kafka", "rust"})
	for _, k := range slices.Sorted(maps.Keys(many)) {
		fmt.Println(k, many[k])
	}
	// Output:
	// kafka: 3 true
	// go 2
	// kafka 3
}
