package kv

import "fmt"

// DecodeError reports a stored value that the store's codec could not
// decode. A store returns it instead of a zero value, so a corrupt or
// foreign value is never mistaken for an empty one.
type DecodeError struct {
	// Key is the key as the caller named it (without a store's prefix).
	Key string
	// Err is the codec's error.
	Err error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("decode value of key %q: %v", e.Key, e.Err)
}

// Unwrap returns the codec's error.
func (e *DecodeError) Unwrap() error { return e.Err }
