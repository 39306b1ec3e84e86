package pebble

// The key layout these follow is described at the top of store.go.

// keys are the keys and bounds of the store whose keys start with prefix.
type keys struct {
	prefix       []byte
	offset, rows []byte // the checkpoint and the row count
	rowLo, rowHi []byte // every row lies in [rowLo, rowHi)
	all          []byte // with rowHi, bounds every key of the store
}

func newKeys(prefix []byte) keys {
	with := func(b ...byte) []byte { return append(append([]byte(nil), prefix...), b...) }
	return keys{
		prefix: prefix,
		offset: with(metaPrefix, 'o', 'f', 'f', 's', 'e', 't'),
		rows:   with(metaPrefix, 'r', 'o', 'w', 's'),
		rowLo:  with(rowPrefix),
		rowHi:  with(endPrefix),
		all:    with(metaPrefix),
	}
}

// row appends the database key of the user's key to dst.
func (k keys) row(dst, key []byte) []byte {
	return append(append(append(dst, k.prefix...), rowPrefix), key...)
}
