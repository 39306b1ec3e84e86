package adtrack

// The URL worker performs the postback requests and writes each outcome as
// a "pob" result. It is at least once towards the networks by nature: a
// request whose outcome was not committed before a crash is sent again,
// with the same X-Request-Id, which networks dedupe on.
//
// Requests are keyed by network and handled concurrently within a
// partition (sluice.ConcurrentInput): up to URLWorkerConcurrency at once,
// at most URLWorkerPerNetwork of them for one network, so a slow or dead
// network holds only its own requests back. A request's offset is
// committed only once every request below it in its partition has an
// outcome; the commit lists the requests above it that have one, and a
// crash sends only the others again.

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

// URLWorkerGroup is the name of the URL worker group. It keeps no table.
const URLWorkerGroup = "adtrack-urlworker"

// How many requests the URL worker performs at once in each partition, and
// at most for one network.
const (
	URLWorkerConcurrency = 64
	URLWorkerPerNetwork  = 8
)

// URLWorker is the URL worker group's definition and the handles of its
// outputs.
type URLWorker struct {
	// Group is the group, for NewProcessor and sluicetest.
	Group *sluice.Group[struct{}]
	// Results is the output of postback results, keyed by postback id.
	Results *sluice.OutputTopic[Event]
	// Rejected is where a request record that is not a request goes, as it
	// came, with the reason in the header "adtrack-error".
	Rejected *sluice.OutputTopic[[]byte]

	sender *Sender
}

// RejectedHeader is the header that says why the URL worker rejected a
// record of RequestsTopic.
const RejectedHeader = "adtrack-error"

// DefineURLWorker defines the URL worker group: it reads RequestsTopic,
// performs each request with sender (nil means a zero Sender, with its
// defaults) and writes the results to ResultsTopic.
//
// A request the worker cannot read goes to DeadLetterTopic: the worker
// decodes requests itself rather than leave it to the error policy,
// because it runs with the Fail policy, which stops it for a request it
// could not perform.
func DefineURLWorker(sender *Sender) *URLWorker {
	if sender == nil {
		sender = &Sender{}
	}
	g := sluice.DefineGroup[struct{}](URLWorkerGroup)
	w := &URLWorker{Group: g, sender: sender}
	sluice.ConcurrentInput(g, RequestsTopic, codec.Bytes(), w.send, URLWorkerConcurrency, sluice.PerKey(URLWorkerPerNetwork))
	w.Results = sluice.Output(g, ResultsTopic, EventCodec())
	w.Rejected = sluice.Output(g, DeadLetterTopic, codec.Bytes())
	return w
}

func (w *URLWorker) send(ctx *sluice.Context[struct{}], raw []byte) error {
	var req Request
	if err := json.Unmarshal(raw, &req); err != nil || req.PostbackID == "" || req.URL == "" {
		if err == nil {
			err = fmt.Errorf("no postback id or url")
		}
		reason := fmt.Sprintf("postback request: %v", err)
		ctx.Logger().Warn("postback request rejected", "err", reason)
		return w.Rejected.Emit(ctx, ctx.Key(), raw, sluice.Header{Key: RejectedHeader, Value: []byte(reason)})
	}
	// Once the processor is stopping, no request is started, and one in
	// flight is cut short: it has no outcome, stays uncommitted, and the
	// next owner sends it again, with the same X-Request-Id.
	if err := ctx.Context().Err(); err != nil {
		return fmt.Errorf("postback %q not sent: %w", req.PostbackID, context.Cause(ctx.Context()))
	}
	res, err := w.sender.Send(ctx.Context(), req)
	if err != nil {
		return err
	}
	if res.Status != StatusOK {
		ctx.Logger().Info("postback not accepted", "postback", req.PostbackID, "network", req.Network,
			"status", res.Status, "code", res.Code, "err", res.Error)
	}
	return w.Results.Emit(ctx, req.PostbackID, res.Event())
}
