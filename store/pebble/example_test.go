package pebble_test

import (
	"fmt"
	"log"
	"os"

	"github.com/sluice-io/sluice/store"
	"github.com/sluice-io/sluice/store/pebble"
)

// A Builder keeps every table partition of a processor in one database in
// its directory, under one memory budget; what was applied is there again
// after the store is closed and opened anew.
func ExampleBuilder() {
	dir, err := os.MkdirTemp("", "pebble-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	build := pebble.Builder(dir, pebble.MemoryBudget(64<<20))
	s, err := build("clicks-table", 3) // partition 3 of the table clicks-table
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Apply([]store.Change{{Key: []byte("user-1"), Value: []byte(`{"Clicks":7}`)}}, 99); err != nil {
		log.Fatal(err)
	}
	if err := s.Close(); err != nil { // makes every Apply durable
		log.Fatal(err)
	}

	s, err = pebble.Builder(dir)("clicks-table", 3)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	v, _ := s.Get([]byte("user-1"))
	off, _ := s.Offset()
	fmt.Println(string(v), off)
	// Output:
	// {"Clicks":7} 99
}
