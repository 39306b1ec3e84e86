// Command sluice runs the embedded Kafka broker, the demo and the apps, and
// inspects topics and groups.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signalContext()
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		if !errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "sluice:", err)
		}
		os.Exit(exitCode(err))
	}
}

// signalContext returns a context cancelled by the first SIGINT or SIGTERM,
// so that commands stop gracefully; a second signal exits at once.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "\nstopping (press Ctrl-C again to exit at once)")
		cancel()
		<-sigs
		os.Exit(130)
	}()
	return ctx, func() { signal.Stop(sigs); cancel() }
}

// exitCode is the process's exit code after err: 1, unless err asks for
// another (lag above its threshold exits with 2).
func exitCode(err error) int {
	var coded interface{ ExitCode() int }
	if errors.As(err, &coded) {
		return coded.ExitCode()
	}
	return 1
}
