package logdrain

import (
	"fmt"
	"testing"
)

// logplexBody is a Logplex body of 100 frames: 80 router lines (some of
// them errors) and 20 app lines, none with structured data.
func logplexBody() []byte {
	var body []byte
	for i := range 100 {
		var m string
		switch {
		case i%5 == 4:
			m = fmt.Sprintf("<190>1 2016-05-04T04:57:12.%06d+00:00 host app web.%d - Completed 200 OK in %dms (Views: 3.1ms | ActiveRecord: 1.2ms)\n", i, i%4, i)
		case i%10 == 3:
			m = fmt.Sprintf(`<158>1 2016-05-04T04:57:12.%06d+00:00 host heroku router - at=error code=H12 desc="Request timeout" method=GET path="/slow/%d" host=myapp.herokuapp.com request_id=8601b555-6a83-4c12-8269-97c8e32cdb22 fwd="2001:db8::1,10.0.0.%d" dyno=web.1 connect=0ms service=30000ms status=503 bytes=0 protocol=https`+"\n", i, i, i)
		default:
			m = fmt.Sprintf(`<158>1 2016-05-04T04:57:12.%06d+00:00 host heroku router - at=info method=GET path="/haiwen/seafile/%d" host=issuetriage.herokuapp.com request_id=cf59a503-3159-4d7c-8287-3ba52d7c44df fwd="144.76.27.118" dyno=web.2 connect=%dms service=%dms status=200 bytes=36360 protocol=https`+"\n", i, i, i%7, 10+i)
		}
		body = AppendFrame(body, []byte(m))
	}
	return body
}

// BenchmarkParseLogplexBody times the three parsers on one typical body;
// apps/logdrain/compare times the maintained parsers on the same body.
func BenchmarkParseLogplexBody(b *testing.B) {
	body := logplexBody()
	b.Run("frames", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			SplitFrames(body)
		}
	})
	b.Run("frames+messages", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			for _, f := range SplitFrames(body) {
				_, _ = ParseMessage(f.Msg)
			}
		}
	})
	b.Run("frames+messages+router", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			for _, f := range SplitFrames(body) {
				m, err := ParseMessage(f.Msg)
				if err == nil && IsRouter(&m) {
					_, _ = ParseRouterLine(m.Msg)
				}
			}
		}
	})
}
