package codec_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/codec"
)

func roundTrip[T any](t *testing.T, c codec.Codec[T], v T, wire string) T {
	t.Helper()
	b, err := c.Encode(v)
	if err != nil {
		t.Fatalf("encode %v: %v", v, err)
	}
	if string(b) != wire {
		t.Fatalf("encode %v: %q, want %q", v, b, wire)
	}
	got, err := c.Decode(b)
	if err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return got
}

func TestCodecsWriteFormatsOtherClientsRead(t *testing.T) {
	if got := roundTrip(t, codec.String(), "héllo", "héllo"); got != "héllo" {
		t.Errorf("string: %q", got)
	}
	if got := roundTrip(t, codec.Int64(), -42, "-42"); got != -42 {
		t.Errorf("int64: %d", got)
	}
	type user struct{ Clicks int }
	if got := roundTrip(t, codec.JSON[user](), user{Clicks: 153}, `{"Clicks":153}`); got.Clicks != 153 {
		t.Errorf("json: %+v", got)
	}
	if got := roundTrip(t, codec.Bytes(), []byte{0, 1, 255}, "\x00\x01\xff"); !bytes.Equal(got, []byte{0, 1, 255}) {
		t.Errorf("bytes: %v", got)
	}
}

func TestBytesDecodeReturnsACopy(t *testing.T) {
	in := []byte("abc")
	out, _ := codec.Bytes().Decode(in)
	in[0] = 'x'
	if string(out) != "abc" {
		t.Fatalf("decoded value changed with its input: %q", out)
	}
}

func TestDecodeErrorsSayWhatWasWrong(t *testing.T) {
	if _, err := codec.Int64().Decode([]byte("three")); err == nil || !strings.Contains(err.Error(), `"three" is not a decimal integer`) {
		t.Errorf("int64 of %q: %v", "three", err)
	}
	if _, err := codec.JSON[map[string]int]().Decode([]byte("{oops")); err == nil || !strings.Contains(err.Error(), "json codec") {
		t.Errorf("json of %q: %v", "{oops", err)
	}
}
