package logdrain

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseMessage(t *testing.T) {
	ts := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name string
		in   string
		want Message
	}{
		{"router line without structured data (Logplex)", routerMsg, Message{
			Priority: 158, Version: 1, Timestamp: ts("2016-05-04T04:57:12.222253+00:00"), Hostname: "host",
			AppName: "heroku", ProcID: "router", Msg: strings.TrimSuffix(routerMsg[len("<158>1 2016-05-04T04:57:12.222253+00:00 host heroku router - "):], "\n"),
		}},
		{"app line without structured data (Logplex)", stateMsg, Message{
			Priority: 40, Version: 1, Timestamp: ts("2012-11-30T06:45:29Z"), Hostname: "host", AppName: "app",
			ProcID: "web.3", Msg: "State changed from starting to up",
		}},
		{"structured data and the NILVALUE msgid (RFC 5424 example)",
			`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event log entry`,
			Message{Priority: 165, Version: 1, Timestamp: ts("2003-10-11T22:14:15.003Z"), Hostname: "mymachine.example.com",
				AppName: "evntslog", MsgID: "ID47", Msg: "An application event log entry",
				StructuredData: []SDElement{{ID: "exampleSDID@32473", Params: []SDParam{{"iut", "3"}, {"eventSource", "Application"}, {"eventID", "1011"}}}}}},
		{"escaped \\], \\\" and \\\\ in structured data, two elements",
			`<13>1 - - - - - [meta a="b\]c" q="say \"x\"" s="back\\slash" o="\n kept"][origin ip="10.0.0.1"] msg` + "\n",
			Message{Priority: 13, Version: 1, Msg: "msg", StructuredData: []SDElement{
				{ID: "meta", Params: []SDParam{{"a", "b]c"}, {"q", `say "x"`}, {"s", `back\slash`}, {"o", `\n kept`}}},
				{ID: "origin", Params: []SDParam{{"ip", "10.0.0.1"}}},
			}}},
		{"NILVALUE structured data and no msg", "<0>1 - - - - - -", Message{Priority: 0, Version: 1}},
		{"NILVALUE structured data and newline", "<0>1 - - - - - -\n", Message{Priority: 0, Version: 1}},
		{"no structured data and no msg", "<0>1 - - - - -\n", Message{Priority: 0, Version: 1}},
		{"structured data without msg", `<0>1 - - - - - [meta x="1"]` + "\n", Message{Priority: 0, Version: 1, StructuredData: []SDElement{{ID: "meta", Params: []SDParam{{"x", "1"}}}}}},
		{"bracketed msg is not structured data", "<190>1 - h app web.1 - [INFO] started\n", Message{Priority: 190, Version: 1, Hostname: "h", AppName: "app", ProcID: "web.1", Msg: "[INFO] started"}},
		{"malformed structured data stays msg", `<190>1 - h app web.1 - [meta a="b]c"] x`, Message{Priority: 190, Version: 1, Hostname: "h", AppName: "app", ProcID: "web.1", Msg: `[meta a="b]c"] x`}},
		{"element glued to text stays msg", `<190>1 - h app web.1 - [meta a="b"]x`, Message{Priority: 190, Version: 1, Hostname: "h", AppName: "app", ProcID: "web.1", Msg: `[meta a="b"]x`}},
		{"duplicate sd-id stays msg", `<190>1 - h a p - [meta][meta] x`, Message{Priority: 190, Version: 1, Hostname: "h", AppName: "a", ProcID: "p", Msg: `[meta][meta] x`}},
		{"msg starting with a dash", "<190>1 - h a p - -5 degrees", Message{Priority: 190, Version: 1, Hostname: "h", AppName: "a", ProcID: "p", Msg: "-5 degrees"}},
		{"msg with newlines and control characters", "<190>1 - h a p - a\nb\x00\x1b[0m\t\n", Message{Priority: 190, Version: 1, Hostname: "h", AppName: "a", ProcID: "p", Msg: "a\nb\x00\x1b[0m\t"}},
		{"msg of 12 KiB", "<190>1 - h a p - " + strings.Repeat("z", 12*1024) + "\n", Message{Priority: 190, Version: 1, Hostname: "h", AppName: "a", ProcID: "p", Msg: strings.Repeat("z", 12*1024)}},
		{"offset timestamp with microseconds", "<191>999 2012-11-30T06:45:29.123456-07:00 h a p m x", Message{Priority: 191, Version: 999, Timestamp: ts("2012-11-30T06:45:29.123456-07:00"), Hostname: "h", AppName: "a", ProcID: "p", MsgID: "m", Msg: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMessage([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !sameMessage(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseMessageFacilityAndSeverity(t *testing.T) {
	m, err := ParseMessage([]byte(routerMsg))
	if err != nil {
		t.Fatal(err)
	}
	if m.Facility() != 19 || m.Severity() != 6 {
		t.Errorf("facility %d severity %d, want 19 (local3) and 6 (info)", m.Facility(), m.Severity())
	}
}

func TestParseMessageErrorsNameTheField(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", "at byte 0: pri: expected '<'"},
		{"hello", "at byte 0: pri: expected '<'"},
		{"<>1 - - - - -", "at byte 1: pri: expected 1 to 3 digits"},
		{"<192>1 - - - - -", "at byte 4: pri: 192 is out of range 0-191"},
		{"<1919>1 - - - - -", "at byte 4: pri: expected '>'"},
		{"<13>0 - - - - -", "at byte 4: version: expected 1 to 999"},
		{"<13> - - - - -", "at byte 4: version: expected 1 to 999"},
		{"<13>1", "at byte 5: expected a space after version"},
		{"<13>1 2012-13-30T06:45:29Z - - - -", `at byte 6: timestamp: "2012-13-30T06:45:29Z" is not RFC 3339`},
		{"<13>1 2012-11-30 06:45:29 - - - -", `at byte 6: timestamp: "2012-11-30" is not RFC 3339`},
		{"<13>1 2012-11-30T06:45:29.1234567Z - - - -", "at byte 6: timestamp: more than 6 fraction digits"},
		{"<13>1 2012-11-30T06:45:29,123Z - - - -", `at byte 6: timestamp: "2012-11-30T06:45:29,123Z" is not RFC 3339`},
		{"<13>1 - h", "at byte 9: expected a space after hostname"},
		{"<13>1 -  a p m", "at byte 8: hostname: empty"},
		{"<13>1 - h\x01st a p m", `at byte 9: hostname: character '\x01' is not printable US-ASCII`},
		{"<13>1 - h " + strings.Repeat("a", 49) + " p m", "at byte 10: app-name: longer than 48 characters"},
		{"<13>1 - h a p " + strings.Repeat("m", 33), "at byte 14: msgid: longer than 32 characters"},
		{"<13>1 - h a p\tq m", `at byte 13: procid: character '\t' is not printable US-ASCII`},
		{"<13>1 - h a p m\x00", `at byte 15: msgid: character '\x00' is not printable US-ASCII`},
	}
	for _, tt := range tests {
		_, err := ParseMessage([]byte(tt.in))
		if err == nil || !errors.Is(err, ErrMessage) || err.Error() != "bad syslog message: "+tt.want {
			t.Errorf("ParseMessage(%q) error %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestAppendMessageIsTheLogplexForm(t *testing.T) {
	m, err := ParseMessage([]byte(routerMsg))
	if err != nil {
		t.Fatal(err)
	}
	// The offset +00:00 is written Z, which RFC 5424 allows alike.
	want := strings.Replace(routerMsg, "222253+00:00 host heroku router - at=", "222253Z host heroku router - - at=", 1)
	if got := string(AppendMessage(nil, &m)); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// FuzzParseMessage checks that ParseMessage never panics and that a message
// it parses, written again with AppendMessage, parses to the same Message.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{
		routerMsg, stateMsg, startMsg,
		`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event`,
		`<13>1 - - - - - [meta a="b\]c\"d\\e"][origin ip="10.0.0.1"]`,
		"<0>1 - - - - - -", "<191>999 2012-11-30T06:45:29.123456-07:00 h a p m [INFO] x\n", "<40>1 2012-11-30T06:45:29+00:00 host app web.3 - a\nb\x00\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		out := AppendMessage(nil, &m)
		m2, err := ParseMessage(out)
		if err != nil {
			t.Fatalf("written again as %q, it does not parse: %v", out, err)
		}
		if !sameMessage(m, m2) {
			t.Fatalf("written again as %q:\n got %+v\nwant %+v", out, m2, m)
		}
	})
}

func sameMessage(a, b Message) bool {
	_, ao := a.Timestamp.Zone()
	_, bo := b.Timestamp.Zone()
	ta, tb := a.Timestamp, b.Timestamp
	a.Timestamp, b.Timestamp = time.Time{}, time.Time{}
	return ta.Equal(tb) && ao == bo && equalMessages(a, b)
}

func equalMessages(a, b Message) bool {
	return a.Priority == b.Priority && a.Version == b.Version && a.Hostname == b.Hostname &&
		a.AppName == b.AppName && a.ProcID == b.ProcID && a.MsgID == b.MsgID && a.Msg == b.Msg &&
		slices.EqualFunc(a.StructuredData, b.StructuredData, func(x, y SDElement) bool {
			return x.ID == y.ID && slices.Equal(x.Params, y.Params)
		})
}
