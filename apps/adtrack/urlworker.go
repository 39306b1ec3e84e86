package adtrack

// The URL worker performs the postback requests and writes each outcome as
// a "pob" result. It is at least once towards the networks by nature: a
// request whose outcome was not committed before a crash is sent again,
// with the same X-Request-Id, which networks dedupe on.
//
// Records of one partition are handled one at a time; requests are keyed by
// network, so a slow network holds back the networks that share its
// partition, and no others.

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
)

// URLWorkerGroup is the name of the URL worker group. It keeps no table.
const URLWorkerGroup = "adtrack-urlworker"

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
// because it runs with the Fail policy. Under Skip or DeadLetter, the
// request in hand when the processor stops would be skipped or
// dead-lettered, not sent again.
func DefineURLWorker(sender *Sender) *URLWorker {
	if sender == nil {
		sender = &Sender{}
	}
	g := sluice.DefineGroup[struct{}](URLWorkerGroup)
	w := &URLWorker{Group: g, sender: sender}
	sluice.Input(g, RequestsTopic, codec.Bytes(), w.send)
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
	// Once the processor is stopping, no request is started: the task
	// goes on through the records it fetched, and a slow network's backlog
	// would hold up the stop by all of it. The error leaves this record and
	// the rest uncommitted, for the next run.
	if err := ctx.Context().Err(); err != nil {
		return fmt.Errorf("postback %q not sent: %w", req.PostbackID, context.Cause(ctx.Context()))
	}
	// The request in hand is finished when the processor stops, as a task
	// finishes the record in hand: its outcome is then committed, and it
	// is not sent again. The Sender's attempts and timeouts bound the wait.
	res, err := w.sender.Send(context.WithoutCancel(ctx.Context()), req)
	if err != nil {
		return err
	}
	if res.Status != StatusOK {
		ctx.Logger().Info("postback not accepted", "postback", req.PostbackID, "network", req.Network,
			"status", res.Status, "code", res.Code, "err", res.Error)
	}
	return w.Results.Emit(ctx, req.PostbackID, res.Event())
}
