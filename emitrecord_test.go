package sluice

import (
	"testing"
	"unsafe"
)

// A record to emit has a nil Headers slice when it has no headers, and room
// for exactly its headers otherwise, in the allocation of the record when
// they are one or two.
func TestEmittedRecordHasRoomForExactlyItsHeaders(t *testing.T) {
	for n := range 4 {
		r := newRecord(n)
		if n == 0 && r.Headers != nil {
			t.Errorf("no headers: Headers is %v, want nil", r.Headers)
		}
		if len(r.Headers) != 0 || cap(r.Headers) != n {
			t.Errorf("%d headers: len %d cap %d, want 0 and %d", n, len(r.Headers), cap(r.Headers), n)
		}
		if n == 1 || n == 2 {
			start := uintptr(unsafe.Pointer(r))
			at := uintptr(unsafe.Pointer(unsafe.SliceData(r.Headers[:n])))
			if at != start+unsafe.Sizeof(*r) {
				t.Errorf("%d headers: not in the record's allocation", n)
			}
		}
	}
}
