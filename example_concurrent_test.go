package sluice_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/sluice-io/sluice"
	"github.com/sluice-io/sluice/codec"
	"github.com/sluice-io/sluice/sluicetest"
)

// A URL checker: each record names a path to request, keyed by the host it
// belongs to. Up to 8 requests of a partition run at once, one at a time
// per host, and each outcome is emitted. The tester runs the handlers as a
// processor does and returns from Send once they finished.
func ExampleConcurrentInput() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	g := sluice.DefineGroup[struct{}]("checker")
	results := sluice.Output(g, "checked", codec.String())
	sluice.ConcurrentInput(g, "to-check", codec.String(), func(ctx *sluice.Context[struct{}], path string) error {
		req, err := http.NewRequestWithContext(ctx.Context(), http.MethodGet, srv.URL+path, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return results.Emit(ctx, ctx.Key(), fmt.Sprintf("%s %d", path, resp.StatusCode))
	}, 8)

	tt, err := sluicetest.New(g)
	if err != nil {
		log.Fatal(err)
	}
	for _, path := range []string{"/", "/missing", "/about"} {
		if err := sluicetest.Send(tt, "to-check", "example.com", path); err != nil {
			log.Fatal(err)
		}
	}
	out, err := sluicetest.Output(tt, results)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range out {
		fmt.Println(m.Key, m.Value)
	}
	// Output:
	// example.com / 200
	// example.com /missing 404
	// example.com /about 200
}
