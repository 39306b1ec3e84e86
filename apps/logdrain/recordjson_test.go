package logdrain

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzRecordAppendJSONReadsBackAsEncodingJSON checks that the hand-written
// JSON of a Record is valid and reads back as what json.Marshal writes.
func FuzzRecordAppendJSONReadsBackAsEncodingJSON(f *testing.F) {
	for _, seed := range []string{
		`<158>1 2016-05-04T04:57:12.222253+00:00 host heroku router - at=info method=GET path="/haiwen/seafile" host=issuetriage.herokuapp.com request_id=cf59a503 fwd="144.76.27.118" dyno=web.2 connect=0ms service=166ms status=200 bytes=36360`,
		`<158>1 2016-05-04T04:57:12+00:00 host heroku router - at=error code=H12 desc="Request \"timeout\" \\ <&>" method=GET path="/a?b=<c>&d" fwd="2001:db8::1, 10.0.0.1" dyno= connect= service=1.5s status=503 bytes= protocol=https extra=x`,
		`<40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed from starting to up`,
		"<13>1 - - - - - [meta@1 a=\"x\\]y\" b=\"\"] line\twith\x01control\u2028chars\xffand bad utf-8",
		`<190>1 2016-05-04T04:57:12.5Z host app web.1 ID47 [exampleSDID@32473 iut="3"][meta sequenceId="1"] [INFO] started`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		recs := []Record{NewRecord(&m, nil)}
		if r, err := ParseRouterLine(m.Msg); err == nil {
			recs = append(recs, NewRecord(&m, &r))
		}
		for _, rec := range recs {
			got := rec.AppendJSON(nil)
			if !json.Valid(got) {
				t.Fatalf("invalid JSON %q", got)
			}
			want, err := json.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(want, &w); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("AppendJSON\n%s\njson.Marshal\n%s", got, want)
			}
		}
	})
}
