// Package export dedupes counters that change many times a second to their
// latest value per time bucket and ships them in batches to a bulk sink.
//
// Its input is the topic of counter updates, keyed by stats key, the value
// the counter's new value in decimal. ParseStatsKey reads a key into a
// StatsKey, or returns an error wrapping ErrStatsKey that says what is
// wrong, and never panics:
//
//	k, err := export.ParseStatsKey("stats/{service:1006}/cinstance:a60/metric:255/hour:2016010411")
//	// k.Service "1006", k.CInstance "a60", k.Metric "255", k.Period export.Hour,
//	// k.Time 2016-01-04 11:00 UTC, k.Exported() true
//
// The group (DefineGroup) keeps each key's latest value per tumbling bucket
// of event time and, when a bucket closes, makes it one Event, with
// time_gen the bucket's end and a stable id. The events go to a Kafka topic
// in the group's batch (in its transaction under exactly once), or to a
// Sink through an Exporter, which packs them into calls within the sink's
// Limits (Firehose's PutRecordBatch values by default) and retries with
// backoff. FileSink writes JSON Lines files and HTTPSink posts NDJSON; a
// Sink is one method, so others (S3, Firehose) are short to add. Run runs
// it all, and Flush runs it until what is pending has been sent:
//
//	sink, err := export.NewHTTPSink("http://ingest:8080/events", nil)
//	err = export.Run(ctx, export.Config{Brokers: []string{"127.0.0.1:9092"}, Sink: sink})
//
// With Config.MonitorAddr, Run serves the web monitor with the Export page
// (MonitorPage): the pending events against the pending limit, with a
// chart, whether the input is paused, the updates in, deduped and events
// out, and the sink's health (Exporter.Health): events accepted, calls,
// errors by kind, the last success and the last error. Its JSON is at
// /api/pages/export/status.
//
// What it guarantees: every event is at every moment accepted by the sink
// or in a pending row of the group's table, committed before the input past
// its bucket, so a crash loses none; an event may reach a file or HTTP sink
// more than once, with the same id and value. A Kafka topic under exactly
// once has each event once. Above the pending limit the input waits for the
// sink. docs/apps/export.md has the design.
package export
