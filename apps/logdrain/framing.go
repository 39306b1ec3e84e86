package logdrain

// Octet-counting framing (RFC 6587 section 3.4.1), as Logplex sends it: a
// body is `<count> <count bytes>` repeated, where the count is a decimal
// without leading zeros and the counted bytes include the message's trailing
// newline.
//
// Invariants:
//   - SplitFrames never fails as a whole and never panics: it accounts for
//     every byte of the body, as a good frame, as a bad span (a Frame with
//     Err set), or as white space between frames, in body order.
//   - A good frame's Msg is exactly count bytes and shares the body's memory.
//   - After a bad span, framing resumes at the first later position that
//     starts a plausible frame (see resync), so one broken count does not lose
//     the good frames after it.

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrFraming is what every framing error wraps: errors.Is(err, ErrFraming)
// tells a body whose framing is broken from a frame whose message is bad.
var ErrFraming = errors.New("bad framing")

// maxCountDigits bounds the count so that it never overflows an int; a
// count of a billion bytes or more is past any body a drain accepts.
const maxCountDigits = 9

// Frame is one octet-counted message of a body, or a span of the body that
// could not be framed.
type Frame struct {
	// Offset is where the frame (its count) starts in the body.
	Offset int
	// Msg is the counted message, sharing the body's memory. For a bad span
	// it holds the span's raw bytes, so that they can be kept with the reason.
	Msg []byte
	// Err is nil for a good frame, else a *FrameError saying why the span is
	// not a frame.
	Err error
}

// FrameError says why a span of a body is not a frame.
type FrameError struct {
	// Offset is where the bad span starts in the body.
	Offset int
	// Reason is what is wrong, in a few words.
	Reason string
}

// Error implements error.
func (e *FrameError) Error() string {
	return fmt.Sprintf("frame at byte %d: %s", e.Offset, e.Reason)
}

// Is reports whether target is ErrFraming.
func (e *FrameError) Is(target error) bool { return target == ErrFraming }

// SplitFrames splits a body in octet-counting framing into its frames, in
// body order. White space (space, tab, CR, LF) before a count is skipped, as
// some senders separate frames with a newline or lead with a space. Where a
// count is missing, malformed or runs past the end of the body, the bytes up
// to the next plausible frame start become one bad Frame, whose Err names the
// reason, and framing resumes there. A body whose frames are all good yields
// no Frame with Err set.
func SplitFrames(body []byte) []Frame {
	var frames []Frame
	i := 0
	for {
		i = skipSpace(body, i)
		if i >= len(body) {
			return frames
		}
		msg, next, reason := frameAt(body, i)
		if reason == "" {
			frames = append(frames, Frame{Offset: i, Msg: msg})
			i = next
			continue
		}
		end := resync(body, i+1)
		frames = append(frames, Frame{
			Offset: i,
			Msg:    body[i:end],
			Err:    &FrameError{Offset: i, Reason: reason},
		})
		i = end
	}
}

// AppendFrame appends msg to dst in octet-counting framing and returns the
// extended buffer. The caller ends msg with a newline where the receiver
// expects one, as Logplex does.
func AppendFrame(dst, msg []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(msg)), 10)
	dst = append(dst, ' ')
	return append(dst, msg...)
}

// frameAt reads the frame whose count starts at i. It returns the message
// and the position after it, or the reason there is no frame at i.
func frameAt(body []byte, i int) (msg []byte, next int, reason string) {
	j := i
	for j < len(body) && isDigit(body[j]) {
		j++
	}
	digits := j - i
	switch {
	case digits == 0:
		return nil, 0, fmt.Sprintf("expected a count, found %q", clip(body[i:]))
	case body[i] == '0':
		return nil, 0, fmt.Sprintf("count %q has a leading zero or is zero", body[i:j])
	case digits > maxCountDigits:
		return nil, 0, fmt.Sprintf("count of %d digits is too large", digits)
	}
	if j >= len(body) {
		return nil, 0, fmt.Sprintf("count %s at the end of the body", body[i:j])
	}
	if body[j] != ' ' {
		return nil, 0, fmt.Sprintf("count %s followed by %q, not a space", body[i:j], body[j])
	}
	n, _ := strconv.Atoi(string(body[i:j])) // digits only, at most 9: cannot fail
	start := j + 1
	if n > len(body)-start {
		return nil, 0, fmt.Sprintf("count %d runs past the end of the body (%d bytes left)", n, len(body)-start)
	}
	return body[start : start+n], start + n, ""
}

// resync returns the first position at or after from that starts a
// plausible frame: at the start of a line (after a newline, as every
// Logplex frame ends with one), a count that fits in the body, a space and
// the '<' of a syslog PRI. It returns len(body) when there is none. The
// test is strict so that bytes inside a bad span are not taken for a frame.
func resync(body []byte, from int) int {
	for k := from; k < len(body); k++ {
		if body[k-1] != '\n' || !isDigit(body[k]) {
			continue
		}
		msg, _, reason := frameAt(body, k)
		if reason == "" && len(msg) > 0 && msg[0] == '<' {
			return k
		}
	}
	return len(body)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// clip shortens b for an error message.
func clip(b []byte) []byte {
	const limit = 16
	if len(b) > limit {
		return b[:limit]
	}
	return b
}

// clipString shortens s for an error message.
func clipString(s string) string {
	const limit = 32
	if len(s) > limit {
		return s[:limit]
	}
	return s
}
