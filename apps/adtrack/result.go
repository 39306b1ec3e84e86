package adtrack

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Status is the outcome of a postback.
type Status string

const (
	// StatusOK is a request the network answered with 200, 204 or 302.
	StatusOK Status = "ok"
	// StatusMissingParameter is a request the network answered with 400:
	// it lacks something the network needs.
	StatusMissingParameter Status = "missing_parameter"
	// StatusFailed is a request answered with another status, or not
	// answered, after its retries.
	StatusFailed Status = "failed"
	// StatusError is a postback whose request could not be made from its
	// event (a template failed); nothing was sent.
	StatusError Status = "error"
)

// Result is the outcome of one postback for one event. As a "pob" event
// (see Event) it is counted and kept for audit.
type Result struct {
	// Request is the request, or for StatusError only its postback id and
	// network.
	Request Request
	// Status is the outcome.
	Status Status
	// Code is the HTTP status of the last response; 0 when there was none.
	Code int
	// Error says what went wrong; blank for StatusOK.
	Error string
	// Attempts is how many times the request was sent.
	Attempts int
	// At is when the outcome was known, to the second.
	At time.Time
}

// ErrorResult is the result of postback p when its request could not be
// rendered, with the error Render or Applies returned.
func ErrorResult(p *Postback, err error, at time.Time) Result {
	return Result{
		Request: Request{PostbackID: p.ID, Network: p.Network},
		Status:  StatusError,
		Error:   err.Error(),
		At:      at.UTC().Truncate(time.Second),
	}
}

// ResultType is the event type of postback results.
const ResultType = "pob"

// headerPrefix prefixes the params that hold the request's headers.
const headerPrefix = "header."

// Event is the result as a "pob" tracker event: ts is At, and the params
// are pbid, network, reqid, status, rc, attempts, error, method, url, body
// and header.<Name> for each header (blank ones left out).
func (r Result) Event() Event {
	p := url.Values{}
	set := func(k, v string) {
		if v != "" {
			p.Set(k, v)
		}
	}
	q := r.Request
	set("pbid", q.PostbackID)
	set("network", q.Network)
	set("reqid", q.ID)
	set("status", string(r.Status))
	set("rc", strconv.Itoa(r.Code))
	set("attempts", strconv.Itoa(r.Attempts))
	set("error", r.Error)
	set("method", q.Method)
	set("url", q.URL)
	set("body", q.Body)
	for name, v := range q.Header {
		set(headerPrefix+name, v)
	}
	return Event{Path: "/t/" + ResultType, Meta: Meta{TS: r.At.UTC().Truncate(time.Second)}, Params: p}
}

// ParseResult reads a result back from its "pob" event.
func ParseResult(e Event) (Result, error) {
	if e.Type() != ResultType {
		return Result{}, fmt.Errorf("postback result: event type %q, want %s", clip(e.Type()), ResultType)
	}
	r := Result{
		Request: Request{
			ID: e.Param("reqid"), PostbackID: e.Param("pbid"), Network: e.Param("network"),
			Method: e.Param("method"), URL: e.Param("url"), Body: e.Param("body"),
		},
		Status: Status(e.Param("status")),
		Error:  e.Param("error"),
		At:     e.Meta.TS,
	}
	if r.Request.PostbackID == "" {
		return Result{}, errors.New("postback result: no pbid")
	}
	var err error
	if r.Code, err = atoiOrZero(e.Param("rc")); err != nil {
		return Result{}, fmt.Errorf("postback result: rc: %w", err)
	}
	if r.Attempts, err = atoiOrZero(e.Param("attempts")); err != nil {
		return Result{}, fmt.Errorf("postback result: attempts: %w", err)
	}
	for k := range e.Params {
		if name, ok := strings.CutPrefix(k, headerPrefix); ok {
			if r.Request.Header == nil {
				r.Request.Header = map[string]string{}
			}
			r.Request.Header[name] = e.Param(k)
		}
	}
	return r, nil
}

func atoiOrZero(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	return strconv.Atoi(s)
}
