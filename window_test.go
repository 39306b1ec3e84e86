package sluice

import (
	"strings"
	"testing"
	"time"
)

func TestWindowRowKeysSortByAggregationThenEndAndParseBack(t *testing.T) {
	at := func(s int64) time.Time { return time.Unix(s, 0) }
	early := windowRowKey("counts", "zz", Window{Start: at(0), End: at(10)})
	late := windowRowKey("counts", "aa", Window{Start: at(10), End: at(20)})
	negative := windowRowKey("counts", "k", Window{Start: at(-20), End: at(-10)})
	if !(negative < early && early < late) {
		t.Fatalf("window rows do not sort by end: %q %q %q", negative, early, late)
	}
	lo, hi := windowRange("counts", at(20).UnixNano())
	if !(string(lo) <= early && early < string(hi)) || late < string(hi) {
		t.Fatalf("range below end 20s: [%q, %q) should hold the window ending at 10s and not the one ending at 20s", lo, hi)
	}
	name, key, w, ok := parseWindowRowKey(late)
	if !ok || name != "counts" || key != "aa" || !w.Start.Equal(at(10)) || !w.End.Equal(at(20)) {
		t.Fatalf("parse %q = %q %q %v %v", late, name, key, w, ok)
	}
	if _, _, _, ok := parseWindowRowKey(streamTimeKey); ok {
		t.Fatal("the stream time row parsed as a window row")
	}
}

func TestWindowsThatCannotWorkAreRefusedWithTheReason(t *testing.T) {
	for _, tc := range []struct {
		w    Windows
		want string
	}{
		{Windows{}, "windows are not set"},
		{Tumbling(0), "size must be positive"},
		{Hopping(time.Minute, 2*time.Minute), "advance must be positive and at most the size"},
		{Tumbling(time.Minute).Grace(-time.Second), "grace must not be negative"},
		{Tumbling(time.Minute).Grace(time.Second).Retain(time.Minute), "shorter than size plus grace"},
	} {
		err := tc.w.validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: validate = %v, want %q", tc.w, err, tc.want)
		}
	}
	if err := Hopping(time.Minute, 10*time.Second).Grace(5 * time.Second).validate(); err != nil {
		t.Errorf("valid hopping windows refused: %v", err)
	}
}
