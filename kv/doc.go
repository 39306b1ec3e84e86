// Package kv is the small key-value interface batch handlers keep their state
// in, as Kasper's handlers keep theirs in Redis.
//
// Three implementations exist: an in-process map (NewMemory), Redis
// (package kv/redis), and the batch group's own changelogged table, which a
// batch handler gets from its BatchContext and which is the only one whose
// writes commit in the same transaction as the batch's outputs and offsets.
//
//	bg := sluice.DefineBatchGroup[string, string]("word-count")
//	counts := sluice.BatchState(bg, kv.NewMemory[int64]()) // or redis.New(client, codec.Int64())
//	sluice.HandleBatches(bg, func(ctx sluice.BatchContext, recs []sluice.Record[string, string], s sluice.Sender) error {
//		st := counts.Store(ctx) // a Store[int64]
//		n, _, err := st.Get(ctx.Context(), "kafka")
//		if err != nil {
//			return err
//		}
//		return st.Put(ctx.Context(), "kafka", n+int64(len(recs)))
//	})
//
// Writes may be buffered until Flush. The batch processor calls Flush after
// a handler returns and before it produces the handler's outputs and commits
// the batch's input offsets, so a store is never behind the offsets.
//
// A Store of one's own passes the conformance tests in kv/kvtest.
package kv
