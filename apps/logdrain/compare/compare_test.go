package compare

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/heroku/x/logplex/encoding"
	syslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/octetcounting"
	"github.com/leodido/go-syslog/v4/rfc5424"

	"github.com/sluice-io/sluice/apps/logdrain"
)

// parsed is what a candidate made of one frame.
type parsed struct {
	msg string
	sd  string // the structured data, as "id:name=value,…;…", sorted
}

// outcome is what a candidate made of one body.
type outcome struct {
	msgs   []parsed
	errs   int
	panics string
}

type candidate struct {
	name  string
	parse func(body []byte) outcome
}

var candidates = []candidate{
	{"leodido/go-syslog/v4 octetcounting+rfc5424", leodido(false)},
	{"leodido/go-syslog/v4 same, best effort", leodido(true)},
	{"heroku/x logplex DrainScanner", heroku(true, true)},
	{"heroku/x same, default buffer", heroku(true, false)},
	{"heroku/x logplex Scanner", heroku(false, true)},
	{"sluice logdrain", sluice},
}

func guard(o *outcome) {
	if r := recover(); r != nil {
		o.panics = fmt.Sprint(r)
	}
}

func sdString(sd map[string]map[string]string) string {
	var elems []string
	for id, params := range sd {
		var ps []string
		for k, v := range params {
			ps = append(ps, k+"="+v)
		}
		slices.Sort(ps)
		elems = append(elems, id+":"+strings.Join(ps, ","))
	}
	slices.Sort(elems)
	return strings.Join(elems, ";")
}

func leodido(bestEffort bool) func([]byte) outcome {
	return func(body []byte) (o outcome) {
		defer guard(&o)
		opts := []syslog.ParserOption{
			syslog.WithMaxMessageLength(1 << 20),
			syslog.WithListener(func(r *syslog.Result) {
				if r.Error != nil {
					o.errs++
				}
				m, ok := r.Message.(*rfc5424.SyslogMessage)
				if !ok || m == nil || (r.Error != nil && m.Message == nil) {
					return
				}
				p := parsed{}
				if m.Message != nil {
					// The parser keeps the frame's trailing newline in MSG.
					p.msg = strings.TrimSuffix(*m.Message, "\n")
				}
				if m.StructuredData != nil {
					p.sd = sdString(*m.StructuredData)
				}
				o.msgs = append(o.msgs, p)
			}),
		}
		if bestEffort {
			opts = append(opts, syslog.WithBestEffort())
		}
		octetcounting.NewParser(opts...).Parse(bytes.NewReader(body))
		return o
	}
}

func heroku(drain, bigBuffer bool) func([]byte) outcome {
	return func(body []byte) (o outcome) {
		defer guard(&o)
		var s encoding.Scanner
		var opts []encoding.ScannerOption
		if bigBuffer {
			// The default frame limit is 10240 bytes; raise it so that the
			// cases measure the parser rather than the buffer.
			opts = append(opts, encoding.WithBuffer(1024, 1<<20))
		}
		if drain {
			s = encoding.NewDrainScanner(bytes.NewReader(body), opts...)
		} else {
			s = encoding.NewScanner(bytes.NewReader(body), opts...)
		}
		for s.Scan() {
			// The scanner drops structured data and keeps the trailing
			// newline in the message.
			o.msgs = append(o.msgs, parsed{msg: strings.TrimSuffix(s.Message().Message, "\n")})
		}
		if s.Err() != nil {
			o.errs++
		}
		return o
	}
}

func sluice(body []byte) (o outcome) {
	defer guard(&o)
	for _, f := range logdrain.SplitFrames(body) {
		if f.Err != nil {
			o.errs++
			continue
		}
		m, err := logdrain.ParseMessage(f.Msg)
		if err != nil {
			o.errs++
			continue
		}
		sd := map[string]map[string]string{}
		for _, e := range m.StructuredData {
			sd[e.ID] = map[string]string{}
			for _, p := range e.Params {
				sd[e.ID][p.Name] = p.Value
			}
		}
		o.msgs = append(o.msgs, parsed{msg: m.Msg, sd: sdString(sd)})
	}
	return o
}

const (
	stateMsg  = "<40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed from starting to up\n"
	startMsg  = "<40>1 2012-11-30T06:45:26+00:00 host app web.3 - Starting process with command `bundle exec rackup config.ru -p 24405`\n"
	routerMsg = `<158>1 2016-05-04T04:57:12.222253+00:00 host heroku router - at=info method=GET path="/haiwen/seafile" host=issuetriage.herokuapp.com request_id=cf59a503-3159-4d7c-8287-3ba52d7c44df fwd="144.76.27.118" dyno=web.2 connect=0ms service=166ms status=200 bytes=36360` + "\n"
)

var (
	stateRFC = strings.Replace(stateMsg, "web.3 - ", "web.3 - - ", 1)
	startRFC = strings.Replace(startMsg, "web.3 - ", "web.3 - - ", 1)
)

func frame(msg string) string { return string(logdrain.AppendFrame(nil, []byte(msg))) }

const (
	stateText  = "State changed from starting to up"
	startText  = "Starting process with command `bundle exec rackup config.ru -p 24405`"
	routerText = `at=info method=GET path="/haiwen/seafile" host=issuetriage.herokuapp.com request_id=cf59a503-3159-4d7c-8287-3ba52d7c44df fwd="144.76.27.118" dyno=web.2 connect=0ms service=166ms status=200 bytes=36360`
)

// edgeCase is a body and what a correct drain makes of it: the messages
// that must come through, and whether a bad part must be reported. The
// framing cases frame RFC 5424 messages that every candidate parses, and
// count the messages that come through rather than compare them, so that
// each case measures one thing.
type edgeCase struct {
	name    string
	body    string
	want    []parsed
	wantErr bool
	framing bool
}

var big = strings.Repeat("x", 12*1024)

var edgeCases = []edgeCase{
	{"Logplex body (no SD)", frame(routerMsg) + frame(stateMsg), []parsed{{msg: routerText}, {msg: stateText}}, false, false},
	{"RFC 5424 body (SD -)", frame(strings.Replace(stateMsg, "web.3 - ", "web.3 - - ", 1)), []parsed{{msg: stateText}}, false, false},
	{"leading space before the count", " " + frame(stateRFC), []parsed{{msg: stateText}}, false, true},
	{"count past the end of the body", frame(stateRFC) + "500 " + startRFC, []parsed{{msg: stateText}}, true, true},
	{"garbage between frames", frame(stateRFC) + "garbage\n" + frame(startRFC), []parsed{{msg: stateText}, {msg: startText}}, true, true},
	{"negative count, then a good frame", "-1 x\n" + frame(stateRFC), []parsed{{msg: stateText}}, true, true},
	{"escaped \\] in SD", frame(`<40>1 2012-11-30T06:45:29+00:00 host app web.3 - [meta a="b\]c"] hello` + "\n"), []parsed{{msg: "hello", sd: "meta:a=b]c"}}, false, false},
	{"control characters in MSG", frame("<40>1 2012-11-30T06:45:29+00:00 host app web.3 - - bell\a nul\x00 esc\x1b[0m\n"), []parsed{{msg: "bell\a nul\x00 esc\x1b[0m"}}, false, false},
	{"frame of 12 KiB", frame("<40>1 2012-11-30T06:45:29+00:00 host app web.3 - - " + big + "\n"), []parsed{{msg: big}}, false, false},
	{"message containing newlines", frame("<40>1 2012-11-30T06:45:29+00:00 host app web.3 - - one\ntwo\n"), []parsed{{msg: "one\ntwo"}}, false, false},
	{"missing SD, MSG starts with [", frame("<40>1 2012-11-30T06:45:29+00:00 host app web.3 - [INFO] up\n"), []parsed{{msg: "[INFO] up"}}, false, false},
}

func verdict(c edgeCase, o outcome) string {
	if o.panics != "" {
		return "PANIC"
	}
	var wrong []string
	got := 0
	for _, w := range c.want {
		if slices.Contains(o.msgs, w) {
			got++
		}
	}
	if c.framing {
		got = min(len(o.msgs), len(c.want))
	}
	if got < len(c.want) {
		wrong = append(wrong, fmt.Sprintf("%d/%d delivered", got, len(c.want)))
	}
	if extra := len(o.msgs) - got; extra > 0 && c.framing {
		wrong = append(wrong, fmt.Sprintf("%d extra", extra))
	} else if extra > 0 {
		wrong = append(wrong, fmt.Sprintf("%d altered", extra))
	}
	if c.wantErr && o.errs == 0 {
		wrong = append(wrong, "no error")
	}
	if !c.wantErr && o.errs > 0 {
		wrong = append(wrong, "error")
	}
	if len(wrong) == 0 {
		return "ok"
	}
	return strings.Join(wrong, ", ")
}

// TestEdgeCases prints, per candidate, what it makes of each edge case. It
// fails only if the drain's own parser gets one wrong.
func TestEdgeCases(t *testing.T) {
	var sb strings.Builder
	w := bufio.NewWriter(&sb)
	fmt.Fprintf(w, "| case |")
	for _, c := range candidates {
		fmt.Fprintf(w, " %s |", c.name)
	}
	fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---|", len(candidates)))
	for _, ec := range edgeCases {
		fmt.Fprintf(w, "| %s |", ec.name)
		for _, c := range candidates {
			v := verdict(ec, c.parse([]byte(ec.body)))
			fmt.Fprintf(w, " %s |", v)
			if c.name == "sluice logdrain" && v != "ok" {
				t.Errorf("%s: %s", ec.name, v)
			}
		}
		fmt.Fprintln(w)
	}
	w.Flush()
	t.Log("\n" + sb.String())
}

// typicalBody is a Logplex body of 100 frames: 80 router lines (some of them
// errors) and 20 app lines, none with structured data, as Logplex sends them.
func typicalBody(rfc bool) []byte {
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
		if rfc {
			m = strings.Replace(m, " - ", " - - ", 1)
		}
		body = logdrain.AppendFrame(body, []byte(m))
	}
	return body
}

func BenchmarkParseBody(b *testing.B) {
	for _, rfc := range []bool{false, true} {
		body := typicalBody(rfc)
		kind := "logplex"
		if rfc {
			kind = "rfc5424"
		}
		for _, c := range candidates {
			o := c.parse(body)
			b.Run(kind+"/"+c.name, func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					c.parse(body)
				}
				// How many of the body's 100 messages came through: a
				// parser that stops at its first error is fast for nothing.
				b.ReportMetric(float64(len(o.msgs)), "msgs/body")
			})
		}
		b.Run(kind+"/sluice logdrain + router fields", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				for _, f := range logdrain.SplitFrames(body) {
					m, err := logdrain.ParseMessage(f.Msg)
					if err == nil && logdrain.IsRouter(&m) {
						_, _ = logdrain.ParseRouterLine(m.Msg)
					}
				}
			}
		})
	}
}
