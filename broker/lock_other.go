//go:build !unix && !windows

package broker

import "os"

// lockFile does nothing where there is no file locking to use: two brokers on
// one data directory are not prevented there.
func lockFile(*os.File) (held bool, err error) { return true, nil }

func isAddrInUse(error) bool { return false }
