//go:build unix

package broker

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive, non-blocking lock on f. The lock belongs to
// the open file, so it also excludes a second broker in the same process, and
// the operating system releases it when the process dies.
func lockFile(f *os.File) (held bool, err error) {
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

func isAddrInUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }
