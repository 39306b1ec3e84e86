// Package store defines where a task keeps the rows of one table partition
// locally, and the checkpoint that says how much of the table's changelog the
// rows reflect. Two implementations come with sluice: store/pebble, on disk
// (a processor's default), and store/memory (a view's default). A processor
// or view is given one as a Builder, which opens a store per table
// partition:
//
//	p, err := sluice.NewProcessor(g, sluice.Storage(pebble.Builder("/var/lib/clicks")))
//	v, err := sluice.NewView("clicks-table", codec.JSON[User](), sluice.Storage(memory.Builder()))
//
// A Store of one's own passes the conformance tests in store/storetest.
//
// Invariant every implementation keeps: Apply is atomic. After a crash the
// store holds the rows and the checkpoint of some earlier Apply call as a
// whole, never a mix, so restoring from the changelog at the checkpoint always
// brings the rows up to date. A store may lose its most recent Apply calls in a
// crash; it must never hold rows that its checkpoint does not account for.
package store
