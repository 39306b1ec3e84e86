package logdrain

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const (
	routerMsg = `<158>1 2016-05-04T04:57:12.222253+00:00 host heroku router - at=info method=GET path="/haiwen/seafile" host=issuetriage.herokuapp.com request_id=cf59a503-3159-4d7c-8287-3ba52d7c44df fwd="144.76.27.118" dyno=web.2 connect=0ms service=166ms status=200 bytes=36360` + "\n"
	stateMsg  = "<40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed from starting to up\n"
	startMsg  = "<40>1 2012-11-30T06:45:26+00:00 host app web.3 - Starting process with command `bundle exec rackup config.ru -p 24405`\n"
)

// specBody is the two-frame example body of the drain's spec, byte for byte.
var specBody = "262 " + routerMsg + "83 " + stateMsg

// frameSummary is what a test expects of one Frame: its message, or the
// start of its error's reason when it is a bad span.
type frameSummary struct {
	msg    string
	reason string
}

func summarize(frames []Frame) []frameSummary {
	var out []frameSummary
	for _, f := range frames {
		s := frameSummary{msg: string(f.Msg)}
		if f.Err != nil {
			var fe *FrameError
			if !errors.As(f.Err, &fe) || !errors.Is(f.Err, ErrFraming) {
				panic("frame error is not a *FrameError wrapping ErrFraming")
			}
			s.reason = fe.Reason
		}
		out = append(out, s)
	}
	return out
}

func TestSplitFrames(t *testing.T) {
	big := "<40>1 2012-11-30T06:45:29+00:00 host app web.3 - " + strings.Repeat("x", 12*1024) + "\n"
	multiline := "<40>1 2012-11-30T06:45:29+00:00 host app web.3 - line one\nline two\n83 <40>1 not a frame\n"
	control := "<40>1 2012-11-30T06:45:29+00:00 host app web.3 - bell\a nul\x00 esc\x1b[0m\n"
	tests := []struct {
		name string
		body string
		want []frameSummary
	}{
		{"spec example", specBody, []frameSummary{{msg: routerMsg}, {msg: stateMsg}}},
		{"seed example", "83 " + stateMsg + "119 " + startMsg, []frameSummary{{msg: stateMsg}, {msg: startMsg}}},
		{"empty body", "", nil},
		{"only white space", " \r\n\t", nil},
		{"leading space before the count", " 83 " + stateMsg, []frameSummary{{msg: stateMsg}}},
		{"newline between frames", "83 " + stateMsg + "\r\n119 " + startMsg, []frameSummary{{msg: stateMsg}, {msg: startMsg}}},
		{"frame of 12 KiB", frameString(big), []frameSummary{{msg: big}}},
		{"message containing newlines", frameString(multiline) + "83 " + stateMsg, []frameSummary{{msg: multiline}, {msg: stateMsg}}},
		{"control characters", frameString(control), []frameSummary{{msg: control}}},
		{"no trailing newline in the frame", "5 hello", []frameSummary{{msg: "hello"}}},
		{
			"count past the end of the body",
			"83 " + stateMsg + "500 " + startMsg,
			[]frameSummary{{msg: stateMsg}, {msg: "500 " + startMsg, reason: "count 500 runs past the end of the body (119 bytes left)"}},
		},
		{
			"count past the end, then a good frame",
			"300 " + stateMsg + "119 " + startMsg,
			[]frameSummary{{msg: "300 " + stateMsg, reason: "count 300 runs past"}, {msg: startMsg}},
		},
		{
			"garbage between frames",
			"83 " + stateMsg + "garbage\n119 " + startMsg,
			[]frameSummary{{msg: stateMsg}, {msg: "garbage\n", reason: `expected a count, found "garbage\n`}, {msg: startMsg}},
		},
		{
			"count too short resyncs at the next line",
			"60 " + stateMsg + "119 " + startMsg,
			[]frameSummary{{msg: stateMsg[:60]}, {msg: stateMsg[60:], reason: "expected a count"}, {msg: startMsg}},
		},
		{"count not a number", "abc def", []frameSummary{{msg: "abc def", reason: `expected a count, found "abc def"`}}},
		{"count zero", "0 \n83 " + stateMsg, []frameSummary{{msg: "0 \n", reason: `count "0" has a leading zero`}, {msg: stateMsg}}},
		{"count with a leading zero", "083 " + stateMsg, []frameSummary{{msg: "083 " + stateMsg, reason: `count "083" has a leading zero`}}},
		{"negative count", "-5 hello", []frameSummary{{msg: "-5 hello", reason: `expected a count, found "-5 hello"`}}},
		{"count too large", "12345678901 x", []frameSummary{{msg: "12345678901 x", reason: "count of 11 digits is too large"}}},
		{"count at the end of the body", "83 " + stateMsg + "12", []frameSummary{{msg: stateMsg}, {msg: "12", reason: "count 12 at the end of the body"}}},
		{"count without its space", "83\n" + stateMsg, []frameSummary{{msg: "83\n" + stateMsg, reason: `count 83 followed by '\n', not a space`}}},
		{"two spaces after the count", "83  " + stateMsg[:82], []frameSummary{{msg: " " + stateMsg[:82]}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summarize(SplitFrames([]byte(tt.body)))
			if len(got) != len(tt.want) {
				t.Fatalf("got %d frames %q, want %d %q", len(got), got, len(tt.want), tt.want)
			}
			for i := range got {
				if got[i].msg != tt.want[i].msg {
					t.Errorf("frame %d: msg %q, want %q", i, got[i].msg, tt.want[i].msg)
				}
				if !strings.HasPrefix(got[i].reason, tt.want[i].reason) || (tt.want[i].reason == "") != (got[i].reason == "") {
					t.Errorf("frame %d: reason %q, want %q", i, got[i].reason, tt.want[i].reason)
				}
			}
		})
	}
}

func TestSplitFramesErrorNamesOffset(t *testing.T) {
	frames := SplitFrames([]byte("83 " + stateMsg + "xyz"))
	if len(frames) != 2 || frames[1].Err == nil {
		t.Fatalf("got %+v, want a good frame and a bad span", frames)
	}
	want := "frame at byte 86: expected a count, found \"xyz\""
	if got := frames[1].Err.Error(); got != want {
		t.Errorf("error %q, want %q", got, want)
	}
	if frames[1].Offset != 86 {
		t.Errorf("offset %d, want 86", frames[1].Offset)
	}
}

func TestAppendFrameRoundTrips(t *testing.T) {
	var body []byte
	msgs := []string{routerMsg, stateMsg, "x", strings.Repeat("y", 10240)}
	for _, m := range msgs {
		body = AppendFrame(body, []byte(m))
	}
	frames := SplitFrames(body)
	if len(frames) != len(msgs) {
		t.Fatalf("got %d frames, want %d", len(frames), len(msgs))
	}
	for i, f := range frames {
		if f.Err != nil || string(f.Msg) != msgs[i] {
			t.Errorf("frame %d: %q %v, want %q", i, f.Msg, f.Err, msgs[i])
		}
	}
	if !bytes.HasPrefix(body, []byte("262 <158>1")) {
		t.Errorf("body starts %q", body[:12])
	}
}

// frameString frames one message, for tables of bodies.
func frameString(msg string) string { return string(AppendFrame(nil, []byte(msg))) }

// FuzzFraming checks that SplitFrames accounts for every byte of any body,
// in order, and that its good frames framed again split back the same.
func FuzzFraming(f *testing.F) {
	for _, s := range []string{
		specBody, "", " 83 " + stateMsg, "300 " + stateMsg + "119 " + startMsg,
		"83 " + stateMsg + "garbage\n119 " + startMsg, "0 x", "083 x", "-1 x", "9999999999 x", "5 hello\n\n6 world!",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		frames := SplitFrames(body)
		pos := 0
		var good [][]byte
		for _, fr := range frames {
			if fr.Offset < pos {
				t.Fatalf("frame at %d overlaps the one before, which ends at %d", fr.Offset, pos)
			}
			if len(bytes.Trim(body[pos:fr.Offset], " \t\r\n")) != 0 {
				t.Fatalf("bytes %q between frames were dropped", body[pos:fr.Offset])
			}
			if fr.Err != nil {
				if len(fr.Msg) == 0 || !bytes.Equal(body[fr.Offset:fr.Offset+len(fr.Msg)], fr.Msg) {
					t.Fatalf("bad span at %d is not the body's bytes", fr.Offset)
				}
				pos = fr.Offset + len(fr.Msg)
				continue
			}
			head := strconv.Itoa(len(fr.Msg)) + " "
			if !bytes.HasPrefix(body[fr.Offset:], append([]byte(head), fr.Msg...)) {
				t.Fatalf("frame at %d is not its count and message", fr.Offset)
			}
			pos = fr.Offset + len(head) + len(fr.Msg)
			good = append(good, fr.Msg)
		}
		if len(bytes.Trim(body[pos:], " \t\r\n")) != 0 {
			t.Fatalf("bytes %q after the last frame were dropped", body[pos:])
		}
		var again []byte
		for _, m := range good {
			again = AppendFrame(again, m)
		}
		var back [][]byte
		for _, fr := range SplitFrames(again) {
			if fr.Err != nil {
				t.Fatalf("framed again, a good frame is bad: %v", fr.Err)
			}
			back = append(back, fr.Msg)
		}
		if !slices.EqualFunc(good, back, bytes.Equal) {
			t.Fatalf("framed again: %q, want %q", back, good)
		}
	})
}
