package export

// HTTPSink posts each call as one request of NDJSON, and reads the answer
// record by record, so that a server can take some lines and refuse others
// (it is throttled, a line is refused by a downstream store), as Firehose's
// PutRecordBatch answers per record.
//
// The request: POST to the URL, Content-Type application/x-ndjson, the body
// the records' lines one after the other (each event one JSON object, each
// line ending in '\n'), and the header Export-Record-Lines listing how many
// lines each record holds, in order ("1000,1000,37"), for a server that
// stores records as units.
//
// The answer: a 2xx status accepts the call. Its body, if not empty, is a
// JSON object that may list the lines the server did not take, numbered
// from 0 over the whole body:
//
//	{"rejected": [{"line": 3, "error": "throttled"}, {"line": 17, "error": "disk full"}]}
//
// Only the rejected lines are sent again, in a later call (the record's
// error is a *LinesError). Any other status, or a body that is not such an object, fails
// the call: all its records are sent again.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"slices"
	"strconv"
	"strings"
)

// RecordLinesHeader is the request header that lists how many lines each
// record of the body holds.
const RecordLinesHeader = "Export-Record-Lines"

// HTTPAnswer is the JSON body of a 2xx answer to an HTTPSink's request.
type HTTPAnswer struct {
	// Rejected lists the lines the server did not take.
	Rejected []RejectedLine `json:"rejected,omitempty"`
}

// RejectedLine is a line the server did not take, and why.
type RejectedLine struct {
	// Line is the line's number in the request's body, from 0.
	Line int `json:"line"`
	// Error says why it was not taken.
	Error string `json:"error,omitempty"`
}

// HTTPSink is a Sink that posts NDJSON to a URL.
type HTTPSink struct {
	url    string
	client *http.Client
}

// NewHTTPSink returns a sink that posts to url with client, or with
// http.DefaultClient when client is nil; each call is bounded by the
// exporter's CallTimeout. It fails when url does not parse or is not an
// http or https URL with a host.
func NewHTTPSink(url string, client *http.Client) (*HTTPSink, error) {
	// A URL every request would fail on is refused here, not retried for
	// ever with the events held pending.
	u, err := neturl.Parse(url)
	if err != nil {
		return nil, fmt.Errorf("http sink: url %q: %w", url, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("http sink: url %q: want http:// or https:// and a host", url)
	}
	if client == nil {
		client = http.DefaultClient
	}
	return &HTTPSink{url: url, client: client}, nil
}

// maxAnswerBytes bounds the answer's body that is read.
const maxAnswerBytes = 8 << 20

// Put posts the records as one request and reads which were taken.
func (s *HTTPSink) Put(ctx context.Context, records []Record) ([]error, error) {
	var (
		body   bytes.Buffer
		counts = make([]string, len(records))
	)
	for i, r := range records {
		body.Write(r.Data)
		counts[i] = strconv.Itoa(r.Events)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, &body)
	if err != nil {
		return nil, fmt.Errorf("http sink: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set(RecordLinesHeader, strings.Join(counts, ","))
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("http sink: post: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return nil, fmt.Errorf("http sink: read answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("http sink: %s: %s", resp.Status, firstLine(data))
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	var ans HTTPAnswer
	if err := json.Unmarshal(data, &ans); err != nil {
		return nil, fmt.Errorf("http sink: answer is not an HTTPAnswer: %w", err)
	}
	if len(ans.Rejected) == 0 {
		return nil, nil
	}
	// The first line of each record, to find the record of a line.
	starts := make([]int, len(records)+1)
	for i, r := range records {
		starts[i+1] = starts[i] + r.Events
	}
	byRecord := make([]*LinesError, len(records))
	for _, rl := range ans.Rejected {
		if rl.Line < 0 || rl.Line >= starts[len(records)] {
			return nil, fmt.Errorf("http sink: answer rejects line %d of %d", rl.Line, starts[len(records)])
		}
		r := recordOfLine(starts, rl.Line)
		if byRecord[r] == nil {
			byRecord[r] = &LinesError{Err: fmt.Errorf("line %d rejected: %s", rl.Line, rl.Error)}
		}
		byRecord[r].Lines = append(byRecord[r].Lines, rl.Line-starts[r])
	}
	errs := make([]error, len(records))
	for r, le := range byRecord {
		if le != nil {
			slices.Sort(le.Lines)
			le.Lines = slices.Compact(le.Lines)
			errs[r] = le
		}
	}
	return errs, nil
}

// recordOfLine returns the record that holds line, given the first line of
// every record and the total at the end.
func recordOfLine(starts []int, line int) int {
	lo, hi := 0, len(starts)-1
	for lo+1 < hi {
		mid := (lo + hi) / 2
		if starts[mid] <= line {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	if s == "" {
		return "no body"
	}
	return s
}
