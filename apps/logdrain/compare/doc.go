// Package compare measures the maintained syslog parsers against the
// drain's own on the edge cases of Logplex bodies, and times each on a
// typical body. It is a module of its own so that the drain does not depend
// on the parsers it does not use:
//
//	cd apps/logdrain/compare && go test -v -run TestEdgeCases -bench . -benchmem
package compare
