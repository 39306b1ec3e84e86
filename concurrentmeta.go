package sluice

// The metadata a concurrent input (ConcurrentInput) commits with each offset
// of its partitions: which records above the committed offset, the lowest
// unfinished one, have finished already, so that whoever resumes the
// partition skips them rather than handling them again.
//
// The encoding is "sluice-cc:" and the unpadded URL base64 of a version byte
// (1) followed by pairs of uvarints: the number of records not finished, then
// the number finished, counted from the committed offset up. Metadata that
// does not parse as such (another tool's, a member ID, a truncated string)
// reads as nothing finished: the records are handled again, which at least
// once and exactly once both allow.

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"strings"
)

const (
	ccMetaPrefix  = "sluice-cc:"
	ccMetaVersion = 1
	// ccMetaMaxLen bounds the metadata string below Kafka's default
	// offset.metadata.max.bytes, 4096, which a broker enforces by failing
	// the whole commit.
	ccMetaMaxLen = 4000
)

// ccRange is the finished offsets from, included, to to, excluded.
type ccRange struct{ from, to int64 }

// encodeFinished returns the metadata saying that the offsets of finished,
// ascending and each above base, the committed offset, have finished; ""
// if none. When the encoding would exceed ccMetaMaxLen, the highest offsets
// are left out: their records are handled again on resume, which stays at
// least once.
func encodeFinished(base int64, finished []int64) string {
	if len(finished) == 0 {
		return ""
	}
	// Bytes of payload whose base64 fits in the bound with the prefix.
	room := base64.RawURLEncoding.DecodedLen(ccMetaMaxLen - len(ccMetaPrefix))
	buf := []byte{ccMetaVersion}
	pos := base
	for i := 0; i < len(finished); {
		start := finished[i]
		j := i + 1
		for j < len(finished) && finished[j] == finished[j-1]+1 {
			j++
		}
		var pair [2 * binary.MaxVarintLen64]byte
		n := binary.PutUvarint(pair[:], uint64(start-pos))
		n += binary.PutUvarint(pair[n:], uint64(j-i))
		if len(buf)+n > room {
			break
		}
		buf = append(buf, pair[:n]...)
		pos = start + int64(j-i)
		i = j
	}
	if len(buf) == 1 {
		return ""
	}
	return ccMetaPrefix + base64.RawURLEncoding.EncodeToString(buf)
}

// decodeFinished returns the finished ranges that meta, committed with
// offset base, lists, ascending; nil for metadata that is not a concurrent
// input's or does not parse.
func decodeFinished(base int64, meta string) []ccRange {
	rest, ok := strings.CutPrefix(meta, ccMetaPrefix)
	if !ok || len(rest) > ccMetaMaxLen || base < 0 {
		return nil
	}
	buf, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(buf) < 1 || buf[0] != ccMetaVersion {
		return nil
	}
	buf = buf[1:]
	var ranges []ccRange
	pos := base
	for len(buf) > 0 {
		gap, n := binary.Uvarint(buf)
		if n <= 0 {
			return nil
		}
		buf = buf[n:]
		run, n := binary.Uvarint(buf)
		if n <= 0 || run == 0 {
			return nil
		}
		buf = buf[n:]
		if gap > math.MaxInt64-uint64(pos) || run > math.MaxInt64-uint64(pos)-gap {
			return nil
		}
		from := pos + int64(gap)
		pos = from + int64(run)
		ranges = append(ranges, ccRange{from: from, to: pos})
	}
	return ranges
}
