package memory_test

import (
	"fmt"

	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/memory"
)

// Apply writes changes and the changelog offset they reach in one step; a
// nil value deletes its key.
func ExampleNew() {
	s := memory.New()
	defer s.Close()
	_ = s.Apply([]store.Change{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte("2")}}, 41)
	_ = s.Apply([]store.Change{{Key: []byte("a")}}, 42)

	_, err := s.Get([]byte("a"))
	fmt.Println("a:", err)
	v, _ := s.Get([]byte("b"))
	fmt.Println("b:", string(v))
	off, _ := s.Offset()
	fmt.Println("checkpoint:", off)
	// Output:
	// a: store: key not found
	// b: 2
	// checkpoint: 42
}
