// Package memory keeps the rows of a table partition in memory, for tests and
// for tables small enough to restore from their changelog on every start.
//
// Nothing survives Close or a crash: a memory store always starts empty with
// offset -1, so a task restores it from the beginning of the changelog.
//
//	s := memory.New()
//	defer s.Close()
//	err := s.Apply([]store.Change{{Key: []byte("k"), Value: []byte("v")}}, 41)
//
// Get, Iter and Offset may run concurrently with Apply and Clear. Every value
// handed out is a copy, and an iterator walks a snapshot taken when Iter was
// called, so later writes never show through it.
package memory
